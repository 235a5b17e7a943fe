"""A run's plan: what `python -m tune_ae.run` will do, decided from its flags and the experiment
folder as it is on disk, with no Ray and no writes. The sweep executes it and decides nothing.

The mode:
- `new`: no record in the folder (none there yet, or a run killed before writing one).
- `resume`: Tune's saved state is usable and knows every trial tune_ae's record has; Tune's
  restore carries on with its searcher and scheduler.
- `continue`: Tune's state is missing, cut short, names checkpoints that are gone, or misses
  trials the record has: a new Tuner runs the trials that have not finished, each from its
  folder's newest checkpoint; an optuna searcher is rebuilt from the record (search.py).
- `extend`: `--extend`: the grown grid, by a new Tuner, in the same way.

Per trial (or search sample) its action: train from epoch 1, continue from its newest
checkpoint, keep as done, keep as stopped early, retry after an error, or (a search sample not
drawn yet) sample. The status each action starts from is tune_ae's own record (record.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
import time
from dataclasses import dataclass, field
from pathlib import Path

from tune_ae import experiment, lock, ray_internals, record, storage
from tune_ae.args import flag, given_settings, setting_flag
from tune_ae.config import SETTINGS, TRIAL_FIELDS, ConfigError, SweepSettings, TrialConfig, upgraded
from tune_ae.extension import check_extension
from tune_ae.grids import Grid, Range, override, resolve

TRAIN, CONTINUE, RETRY, SAMPLE = "train", "continue", "retry", "sample"
KEEP_DONE, KEEP_STOPPED = "keep done", "keep stopped early"
KEEP = (KEEP_DONE, KEEP_STOPPED)
GRID_FLAGS = ("seeds", "subset", "search", "num_samples", "search_seed")  # run.py's own, beside the trial fields'


@dataclass(frozen=True)
class Step:
    """One trial, or one sample of a search, and what this run does with it."""
    action: str
    config: dict  # its TrialConfig fields; a sample not drawn yet: its point, the searched fields None
    folder: str | None = None  # its trial folder's name; None: not begun
    epoch: int = 0  # CONTINUE, RETRY: the epoch its newest checkpoint holds
    checkpoint: str | None = None
    sample: int | None = None  # a search's sample number at its point
    value: float | None = None  # KEEP: its last val_loss, what a searcher is told of it


@dataclass(frozen=True)
class Plan:
    mode: str
    grid_name: str
    grid: Grid
    settings: SweepSettings
    data_dir: str | None
    steps: tuple[Step, ...] = ()
    why: str = ""  # why this mode, when it is not what the flags asked for
    changed: dict = field(default_factory=dict)  # settings a resume changes: name -> [old, new]
    added: dict | None = None  # what an --extend adds
    set_aside: tuple[str, ...] = ()  # Tune state files that do not parse: renamed out of Tune's sight
    superseded: tuple[str, ...] = ()  # a former Tuner's files, which a new Tuner replaces: renamed likewise
    moves: tuple[tuple[str, str], ...] = ()  # trial folders to rename (an older tune_ae's names) or set aside
    replay: tuple[dict, ...] = ()  # the record's events an optuna searcher is rebuilt from

    @property
    def folder(self) -> Path:
        return storage.local_folder(self.settings.storage_path, self.settings.name)

    @property
    def to_run(self) -> list[Step]:
        return [s for s in self.steps if s.action not in KEEP]

    @property
    def kept(self) -> dict[str, float | None]:
        """Trial folder -> last val_loss of the trials kept as they are (a searcher is told them)."""
        return {s.folder: s.value for s in self.steps if s.action in KEEP and s.folder}

    @property
    def continuing(self) -> bool:
        return self.mode != "new"


def shown(value) -> str:
    """A setting's value as its flag says it: None is `auto` (--cpus-per-trial, --gpus-per-trial)."""
    return "auto" if value is None else str(value)


def folder_name(config: dict) -> str:
    """A trial's folder, named by its full config: the same trial gets the same folder in every
    Tuner of the experiment, so one started afresh continues from the checkpoints already there."""
    try:  # as TrialConfig normalises it (dropout=0 -> 0.0), so every path to a name agrees
        config = TrialConfig.from_dict({k: v for k, v in config.items() if k in TRIAL_FIELDS}, fill_defaults=True).to_dict()
    except (ValueError, TypeError):
        pass
    return ",".join(f"{name}={config.get(name)}" for name in TRIAL_FIELDS)


def overrides(args) -> dict:
    """Trial-field flags given: field -> list of values, or one Range."""
    given = {}
    for name in args.trial_flags:
        values = getattr(args, name)
        if values is None:
            continue
        ranges = [v for v in values if isinstance(v, Range)]
        if ranges and len(values) > 1:
            raise ConfigError(f"{flag(name)} takes one range or a list of values, not both ({' '.join(map(str, values))})")
        given[name] = ranges[0] if ranges else values
    return given


def grid_flags(args) -> dict:
    return {name: getattr(args, name) for name in GRID_FLAGS}


def make(args, storage_path: str) -> Plan:
    """The plan of a command with flags `args` (run.build_parser's) on `storage_path` (checked)."""
    check_flag_combination(args)
    if args.name is not None:
        SweepSettings(storage_path="/", name=args.name)  # the name rules live with the settings
    if args.name is None and args.extend:
        raise ConfigError("--extend adds trials to an existing experiment: give --name (its folder under --storage-path)")
    if args.name is None and args.resume:
        if storage.is_uri(storage_path):
            raise ConfigError(f"--resume with a URI storage path needs --name (the experiment under {storage_path})")
        latest = experiment.latest_experiment(storage_path)
        if latest is None:
            raise ConfigError(f"nothing to resume: no tune_ae experiment at {storage_path}; check --storage-path and --name")
        args.name = latest.name
    folder = storage.local_folder(storage_path, args.name) if args.name else None
    if folder is not None:
        lock.check_free(folder)
    if folder is None or not experiment.has_record(folder):
        if args.resume or args.extend:
            where = storage.experiment_uri(storage_path, args.name)
            if folder is not None and not_ours(folder):
                raise ConfigError(f"nothing to resume: {where} holds no tune_ae record ({experiment.META_FILE}); "
                                  "put back a copy of it, or run the sweep under a new --name")
            raise ConfigError(f"nothing to resume: no tune_ae experiment at {where} (a run stopped before writing its "
                              "record leaves none); check --storage-path and --name, or start it without "
                              f"{'--extend' if args.extend else '--resume'}")
        if folder is not None and (not_ours(folder) or storage.is_uri(storage_path)
                                   and storage.exists(storage_path, args.name)):
            raise ConfigError(f"experiment {args.name} already exists in {storage_path} and holds no tune_ae record "
                              f"({experiment.META_FILE}); put back a copy of it and pass --resume, or pass a new --name")
        return new_plan(args, storage_path)
    if not (args.resume or args.extend):
        raise ConfigError(f"experiment {args.name} already exists in {storage_path}; "
                          "pass --resume to continue it or a new --name")
    return continued_plan(args, storage_path, folder)


LEFTOVERS = {lock.LOCK_FILE, record.RECORD_DIR, "tune.log", "driver-error.txt"}  # a run stopped before its record


def not_ours(folder: Path) -> list[str]:
    """What a folder with no record holds beyond what a run stopped before writing one leaves:
    such a folder is taken as new by the same command; anything else is not tune_ae's to use."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.name not in LEFTOVERS)
    except OSError:  # not there (or not a folder: refused when it is made)
        return []


def check_flag_combination(args) -> None:
    grid_given = [flag(f) for f in (*args.trial_flags, *GRID_FLAGS) if getattr(args, f) is not None]
    if args.extend and args.resume:
        raise ConfigError("--resume and --extend are two ways to continue an experiment; give one "
                          "(--extend also finishes the trials an interruption left)")
    if args.grid and args.extend:
        raise ConfigError("--extend adds to the experiment's own grid; drop --grid (give the values to add instead)")
    if args.resume and (args.grid or grid_given):
        raise ConfigError(f"--resume continues the experiment as it was started; drop {' '.join(grid_given) or '--grid'}"
                          + (" (or add trials with --extend)" if grid_given else ""))


def new_plan(args, storage_path: str) -> Plan:
    grid_name = args.grid or "paper"
    grid = resolve(grid_name, overrides(args), **grid_flags(args))
    name = args.name if args.name is not None else experiment.default_name(grid_name)
    return new(grid, SweepSettings(storage_path=storage_path, name=name, **given_settings(args)), grid_name,
               args.data_dir)


def new(grid: Grid, settings: SweepSettings, grid_name: str = "custom", data_dir: str | None = None) -> Plan:
    """A new experiment's plan: every trial trained from epoch 1 (every sample of a search drawn)."""
    steps = tuple(Step(TRAIN, c.to_dict()) for c in grid.trial_configs()) if grid.known_in_advance else \
        tuple(Step(SAMPLE, dict(point), sample=k) for point in grid.points() for k in range(grid.num_samples))
    return Plan("new", grid_name, grid, settings, data_dir, steps)


def recorded(folder: Path, storage_path: str) -> tuple[dict, str, Grid, SweepSettings]:
    meta = experiment.read_meta(folder)
    try:
        settings = experiment.recorded_settings(meta, storage_path, folder.name)
        return meta, meta["grid_name"], experiment.recorded_grid(meta), settings
    except (KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{experiment.record_file(folder)} lacks what a resume needs ({type(err).__name__}: {err}); "
                          "it is not a complete tune_ae record") from None


def continued_plan(args, storage_path: str, folder: Path) -> Plan:
    meta, grid_name, grid, recorded_settings = recorded(folder, storage_path)
    new = given_settings(args)
    for setting in SETTINGS:
        if not setting.metadata["resumable"] and setting.name in new \
                and new[setting.name] != getattr(recorded_settings, setting.name):
            raise ConfigError(f"{setting_flag(setting)} cannot change on --resume (the sweep runs "
                              f"{getattr(recorded_settings, setting.name)}); drop it")
    settings = dataclasses.replace(recorded_settings, **new)
    changed = {k: [getattr(recorded_settings, k), v] for k, v in new.items() if getattr(recorded_settings, k) != v}
    added = None
    if args.extend:
        grown = override(grid, overrides(args), **grid_flags(args))
        added, grid = check_extension(grid, grown), grown
    entries = record.trials(folder)
    mode, why, set_aside = "extend", "", ()
    if not args.extend:
        why, set_aside, known, saved_at = tune_state(folder)
        mode = "continue" if why or disagrees(grid, entries, known, saved_at) else "resume"
        why = why or disagrees(grid, entries, known, saved_at)
    steps = trial_steps(folder, grid, entries)
    fresh = mode != "resume"  # a Tuner of its own: the former one's files go, the folders are its
    moves = folder_moves(folder, grid, entries) if fresh else ()
    replay = tuple(record.events(folder)) if fresh and not grid.known_in_advance else ()
    superseded = tuner_files(folder) if fresh else ()
    return Plan(mode, grid_name, grid, settings, args.data_dir or meta["data"]["folder"], steps, why, changed, added,
                set_aside, superseded, moves, replay)


def tuner_files(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for pattern in ray_internals.TUNER_STATE_GLOBS for p in folder.glob(pattern)))


def disagrees(grid: Grid, entries: dict[str, record.TrialEntry], known: dict[str, str], saved_at: float) -> str:
    """Why Tune's usable saved state must not be restored, as tune_ae's record has it, or "":
    a trial ended after Tune last saved, which Tune would run again; or (a search whose samples
    are drawn as it runs) a sample begun that Tune never saved, which it would draw again into
    another folder."""
    behind = [name for name, e in entries.items() if e.status in record.FINISHED and (e.ended_at or 0) > saved_at
              and known.get(name) != "TERMINATED"]
    if behind:
        return f"Tune's saved state is older than tune_ae's record ({len(behind)} trial(s) ended after its last save)"
    # (A finished trial it does not know is one a former Tuner ran: kept as it is either way.)
    missed = [] if grid.known_in_advance else [name for name, e in entries.items()
                                                if name not in known and e.status not in record.FINISHED]
    if missed:
        return f"Tune's saved state misses trial(s) tune_ae's record has ({', '.join(missed[:2])})"
    return ""


def as_continued(plan: Plan, why: str) -> Plan:
    """`plan` carried out by a new Tuner instead of Tune's restore (which failed: `why`)."""
    replay = tuple(record.events(plan.folder)) if not plan.grid.known_in_advance else ()
    entries = record.trials(plan.folder)
    return dataclasses.replace(plan, mode="continue", why=why, moves=folder_moves(plan.folder, plan.grid, entries),
                               replay=replay, superseded=tuner_files(plan.folder))


def tune_state(folder: Path) -> tuple[str, tuple[str, ...], dict[str, str], float]:
    """(why Tune's saved state cannot be restored, or "", the state files that do not parse
    (newer than the one that does), the trial folders the usable one knows with Tune's status of
    each, and when it was last saved).

    Tune picks the newest `experiment_state-*.json` by name and, if it does not parse, starts its
    trials from nothing; it fails a trial for good whose checkpoint its state names and is gone
    (rotated out by --keep-checkpoints after the state was saved)."""
    if not (folder / ray_internals.TUNER_FILE).is_file() or not ray_internals.state_files(folder):
        return "it has no Tune state to restore (stopped before Tune's first save)", (), {}, 0.0
    unreadable = []
    for path in reversed(ray_internals.state_files(folder)):
        try:
            state = json.loads(path.read_text())
            trials = ray_internals.state_trials(state)
            if not all(isinstance(t.get("config"), dict) and "hidden" in t["config"] for t, _ in trials):
                raise ValueError("a trial without its config")
        except (OSError, ValueError, KeyError, TypeError) as err:
            unreadable.append((path.name, type(err).__name__))
            continue
        gone = missing_checkpoints(folder, trials)
        known = {Path(t.get("relative_logdir", "")).name: t.get("status") for t, _ in trials}
        # A newer state set aside here is set aside in this folder only (a URI's copy stays): a new
        # Tuner, then, rather than Tune's restore of whichever file it finds newest.
        why = f"Tune's saved state is unusable (it names checkpoints that are gone ({', '.join(gone[:3])}))" if gone \
            else f"Tune's saved state is unusable ({unreadable[0][0]}: {unreadable[0][1]})" if unreadable else ""
        return why, tuple(name for name, _ in unreadable), known, ray_internals.saved_at(state) or path.stat().st_mtime
    detail = f" ({unreadable[0][0]}: {unreadable[0][1]})" if unreadable else ""
    return f"Tune's saved state is unusable{detail}", tuple(name for name, _ in unreadable), {}, 0.0


def missing_checkpoints(folder: Path, trials: list[tuple[dict, str]]) -> list[str]:
    gone = []
    for trial, metadata in trials:
        trial_dir = folder / trial.get("relative_logdir", "")
        names = ray_internals.checkpoint_names(metadata)
        gone += [f"{trial_dir.name}/{n}" for n in sorted(names) if not (trial_dir / n).is_dir()]
    return gone


def trial_steps(folder: Path, grid: Grid, entries: dict[str, record.TrialEntry]) -> tuple[Step, ...]:
    """Every trial of `grid` (every sample of an optuna search) and its action."""
    if grid.known_in_advance:
        by_config = {folder_name(e.config): e for e in entries.values()}
        return tuple(step_of(folder, c.to_dict(), folder_name(c.to_dict()), by_config.get(folder_name(c.to_dict())))
                     for c in grid.trial_configs())
    steps = []
    fields = grid.point_fields()
    for point in grid.points():
        key = {name: point[name] for name in fields}
        begun = sorted((e for e in entries.values() if {n: e.config.get(n) for n in fields} == key),
                       key=lambda e: e.order)
        steps += [dataclasses.replace(step_of(folder, e.config, e.folder, e), sample=k) for k, e in enumerate(begun)]
        steps += [Step(SAMPLE, dict(point), sample=k) for k in range(len(begun), grid.num_samples)]
    return tuple(steps)


def step_of(folder: Path, config: dict, name: str, entry: record.TrialEntry | None) -> Step:
    """A trial's action from its record and its folder's newest checkpoint."""
    from tune_ae import results  # pandas: only once there is a folder to read

    config = upgraded(config)
    checkpoint = results.latest_checkpoint(folder / name) if (folder / name).is_dir() else None
    epoch = max(results.checkpoint_epoch(checkpoint), 0) if checkpoint else 0
    status = entry.status if entry else None
    if status in ("done", "stopped early") or epoch >= config["epochs"]:
        # Killed between its last checkpoint and the driver's record of its end: done all the same.
        rows = results.checkpoint_history(checkpoint) if checkpoint else []
        value = entry.value if entry and entry.value is not None else rows[-1].get("val_loss") if rows else None
        keep = KEEP_STOPPED if status == "stopped early" and epoch < config["epochs"] else KEEP_DONE
        return Step(keep, config, name, entry.epoch or epoch if keep == KEEP_STOPPED else epoch,
                    checkpoint.name if checkpoint else None, value=value)
    action = RETRY if status == "error" else CONTINUE if checkpoint else TRAIN
    return Step(action, config, name if (folder / name).is_dir() or entry else None, epoch,
                checkpoint.name if checkpoint else None)


def folder_moves(folder: Path, grid: Grid, entries: dict) -> tuple[tuple[str, str], ...]:
    """Before a new Tuner continues a grid: trial folders under another name (Tune's default,
    from an older tune_ae) renamed to the name this Tuner gives the same config; folders of no
    trial of the grid moved aside (`.abandoned-DATE-TIME/NAME`), so that no trial takes their
    checkpoints. An optuna search's trials keep the folders the record names; one it does not
    name (its start cut from the record by a kill) holds a sample drawn again: moved aside."""
    aside = f".abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
    if not grid.known_in_advance:
        from tune_ae.results import trial_dirs

        return tuple((d.name, f"{aside}/{d.name}") for d in trial_dirs(folder) if entries and d.name not in entries)
    expected = {folder_name(c.to_dict()) for c in grid.trial_configs()}
    moves = []
    for params in sorted(folder.glob("*/" + ray_internals.PARAMS_FILE)):
        name = params.parent.name
        if name in expected:
            continue
        try:
            target = folder_name(json.loads(params.read_text()))
        except (OSError, ValueError, TypeError):
            target = None
        taken = {to for _, to in moves}
        if target in expected and not (folder / target).exists() and target not in taken:
            moves.append((name, target))
        else:
            moves.append((name, f"{aside}/{name}"))
    return tuple(moves)


def describe(plan: Plan, swept: list[str] | None = None) -> str:
    """The plan as `--plan` prints it: the mode, then one line per trial or sample."""
    from tune_ae import labels

    swept = swept or plan.grid.swept() or ["hidden"]
    lines = [f"experiment {plan.settings.name} in {plan.settings.storage_path}",
             f"mode: {plan.mode}" + (f" ({plan.why})" if plan.why else "")]
    lines += [f"setting {k}: {shown(old)} -> {shown(new)}" for k, (old, new) in plan.changed.items()]
    if plan.added:
        lines.append("adds: " + ", ".join(f"{k} {' '.join(map(str, v))}" for k, v in plan.added.items()))
    lines += [f"set aside: {name} (does not parse)" for name in plan.set_aside]
    if plan.superseded:
        lines.append(f"set aside: the former Tuner's {len(plan.superseded)} file(s) ({', '.join(plan.superseded[:3])}"
                     f"{', ...' if len(plan.superseded) > 3 else ''}): a new Tuner replaces them")
    lines += [f"move: {a} -> {b}" for a, b in plan.moves]
    for step in plan.steps:
        label = labels.label(step.config, [n for n in swept if step.config.get(n) is not None], shown=str) or "trial"
        if step.sample is not None and not plan.grid.known_in_advance:
            label += f" sample {step.sample}"
        lines.append(f"  {label}: {action_text(step)}")
    counts = Counter(step.action for step in plan.steps)
    lines.append(f"{len(plan.to_run)} to run of {len(plan.steps)}: " + ", ".join(f"{n} {a}" for a, n in counts.items()))
    return "\n".join(lines)


def action_text(step: Step) -> str:
    if step.action in (CONTINUE, RETRY) and step.checkpoint:
        what = "retry after an error" if step.action == RETRY else "continue"
        return f"{what} at epoch {step.epoch + 1} from {step.folder}/{step.checkpoint}"
    return {TRAIN: "train from epoch 1", RETRY: "retry after an error, from epoch 1", SAMPLE: "sample, train from epoch 1",
            KEEP_DONE: f"keep (done, {step.epoch} epochs)", KEEP_STOPPED: f"keep (stopped early at epoch {step.epoch})",
            CONTINUE: "train from epoch 1"}[step.action]

