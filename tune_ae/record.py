"""tune_ae's own record of every trial: `<experiment>/tune_ae/trials.jsonl`.

The driver appends one JSON line per event, as it happens:
- `start`: a trial folder began (or began again) training `config`; a search's sample also
  carries its identity, the point (the values of the fields that are not searched) and its
  number `sample` at that point (0, 1, ... in the order the samples began).
- `end`: how that start ended: `done`, `stopped early` (`by` names the scheduler), `error`
  (with its message) or `interrupted` (the sweep stopped while it ran or waited); or, with its
  config, `not started` for a trial Tune had made that never began (the sweep stopped first).

A trial's status is its last event: an `end` after its last `start`, else unfinished (it was
running when the driver died). Tune's own state files are never read for a status: a kill can
leave them older than the trials, cut short or gone. This file lies in a subfolder, where Tune's
experiment-state sync (top-level `*.json` and `*.pkl`) never rewrites it, and is only appended
to; a line cut short by a kill is skipped on reading.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

RECORD_DIR = "tune_ae"  # tune_ae's own files inside an experiment folder
TRIALS_FILE = f"{RECORD_DIR}/trials.jsonl"
END_STATUSES = ("done", "stopped early", "error", "interrupted", "not started")
FINISHED = ("done", "stopped early")  # the statuses of a sweep that ended well


@dataclass
class TrialEntry:
    """What the record says of one trial folder."""
    folder: str
    config: dict
    point: dict = field(default_factory=dict)
    sample: int = 0
    order: int = 0  # its first start's place among all trials' first starts
    status: str | None = None  # the end of its last start; None: unfinished (or never ended)
    epoch: int | None = None  # the epoch its last end came at
    by: str | None = None  # the scheduler that stopped it early
    error: str | None = None
    value: float | None = None  # its last val_loss, what a searcher is told
    ended_at: float | None = None  # when its end was written (seconds since the epoch)
    events: int = 0


def path(folder: str | Path) -> Path:
    return Path(folder) / TRIALS_FILE


def events(folder: str | Path) -> list[dict]:
    """Every readable event, in the order written; a missing file is an empty record."""
    try:
        text = path(folder).read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # cut short by a kill or a full disk
            continue
        if isinstance(event, dict) and isinstance(event.get("trial"), str) and event.get("event") in ("start", "end"):
            found.append(event)
    return found


def legacy_events(folder: str | Path) -> list[dict]:
    """An older tune_ae's folder, which kept no record: its trials as Tune's newest saved state
    has them (TERMINATED: it ended, stopped early where its epochs are short of its config's;
    ERROR: failed), as events. The one place a status comes from Tune's state."""
    from tune_ae import ray_internals

    found = []
    for trial in ray_internals.newest_trials(folder):
        name, status = Path(trial.get("relative_logdir", "")).name, trial.get("status")
        if not name or not isinstance(trial.get("config"), dict):
            continue
        found.append({"event": "start", "trial": name, "config": trial["config"]})
        if status in ("TERMINATED", "ERROR"):
            found.append({"event": "end", "trial": name, "status": "stopped early" if status == "TERMINATED" else "error"})
    return found


def trials(folder: str | Path, recorded: list[dict] | None = None) -> dict[str, TrialEntry]:
    """Trial folder name -> its entry, in the order the trials first began. A folder of an older
    tune_ae, with no record, has the one `legacy_events` derive."""
    if recorded is None:
        recorded = events(folder) if path(folder).is_file() else legacy_events(folder)
    entries: dict[str, TrialEntry] = {}
    for event in recorded:
        name = event["trial"]
        entry = entries.get(name)
        if entry is None and (event["event"] == "start" or event.get("status") == "not started"):
            entry = entries[name] = TrialEntry(name, mapping(event.get("config")), mapping(event.get("point")),
                                               whole(event.get("sample")), len(entries))
        if event["event"] == "start":
            entry.status = entry.epoch = entry.by = entry.error = None
        elif entry is not None and event.get("status") in END_STATUSES:
            entry.status, entry.epoch, entry.ended_at = event["status"], event.get("epoch"), event.get("at")
            entry.by, entry.error = event.get("by"), event.get("error")
            entry.value = event.get("value", entry.value)
        if entry is not None:
            entry.events += 1
    return entries


def mapping(value) -> dict:
    """An event's dict field; anything else (a hand-edited or foreign line) is an empty one."""
    return dict(value) if isinstance(value, dict) else {}


def whole(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def append(folder: str | Path, event: dict) -> None:
    """Add one event (a `start` or an `end`) with the time it was written."""
    target = path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**event, "at": round(time.time(), 3)}, default=str) + "\n"
    with target.open("ab+") as f:
        if f.seek(0, 2):
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                line = "\n" + line  # the last line was cut short: keep it apart from this one
        f.write(line.encode())


def begin(folder: str | Path) -> None:
    """Before a run's first event: an older tune_ae's folder gets its record begun with what
    Tune's state has (legacy_events), while that state is there to read."""
    if not path(folder).is_file():
        for event in legacy_events(folder):
            append(folder, event)


class Recorder:
    """Writes the events of one sweep; knows the samples already begun at each point."""

    def __init__(self, folder: str | Path, point_fields: list[str]):
        self.folder, self.point_fields = Path(folder), point_fields
        self.known = trials(folder)

    def point(self, config: dict) -> dict:
        return {name: config.get(name) for name in self.point_fields}

    def entry(self, name: str, config: dict) -> TrialEntry:
        """The trial's entry; a new one is the next sample of its point."""
        if name not in self.known:
            point = self.point(config)
            sample = sum(e.point == point for e in self.known.values())
            self.known[name] = TrialEntry(name, config, point, sample, len(self.known))
        return self.known[name]

    def start(self, name: str, config: dict) -> None:
        entry = self.entry(name, config)
        entry.status = None
        append(self.folder, {"event": "start", "trial": name, "config": config, "point": entry.point,
                             "sample": entry.sample})

    def never_started(self, name: str, config: dict) -> None:
        """A trial Tune made that never began: it has its place, and its config, all the same."""
        entry = self.entry(name, config)
        entry.status = "not started"
        append(self.folder, {"event": "end", "trial": name, "status": "not started", "config": config,
                             "point": entry.point, "sample": entry.sample})

    def end(self, name: str, status: str, epoch: int | None, value: float | None = None, by: str | None = None,
            error: str | None = None) -> None:
        entry = self.known.get(name)
        if entry is not None and entry.status is not None and status == "interrupted":
            return  # it had ended already; the sweep's stop changes nothing of it
        if entry is not None:
            entry.status = status
        event = {"event": "end", "trial": name, "status": status, "epoch": epoch, "value": value}
        append(self.folder, {**event, **({"by": by} if by else {}), **({"error": error[:500]} if error else {})})
