"""catalog.py: every folder under a storage path summarised from its records, whatever state it is in."""

import json
import os
import shutil
import subprocess
import sys

from tune_ae import catalog, experiment, lock, record
from tune_ae.config import SweepSettings
from tune_ae.grids import Grid

GRID = Grid({"hidden": (64, 512), "epochs": (3,)})
DATA = {"folder": "/data", "subset": None, "train_images": 60000, "test_images": 10000}


def make(root, name, started, ends, grid=GRID, pca=None):
    """An experiment whose trials (one per config of `grid`) ended as `ends` says (None: no end)."""
    folder = root / name
    run = {**experiment.this_run(None), "started": started, "host": "box", "timings": {"fit_s": 60.0, "report_s": 2.0}}
    experiment.write_meta(folder, "custom", grid, SweepSettings(storage_path=str(root), name=name),
                          {**DATA, **({"pca_val_mse": pca} if pca else {})}, run)
    r = record.Recorder(folder, ["hidden"])
    for config, (status, value) in zip((c.to_dict() for c in grid.trial_configs()), ends):
        trial = f"hidden={config['hidden']}"
        r.start(trial, config)
        if status:
            r.end(trial, status, 3, value)
    return folder


def storage(tmp_path):
    make(tmp_path, "done", "2026-12-01T10:00:00+00:00", [("done", 0.02), ("done", 0.005)], pca={"64": 0.01, "512": 0.0025})
    make(tmp_path, "cut", "2026-12-02T10:00:00+00:00", [("done", 0.03), (None, None)])
    make(tmp_path, "broke", "2026-11-30T10:00:00+00:00", [("done", 0.03), ("error", None)])
    make(tmp_path, "live", "2026-12-03T10:00:00+00:00", [("done", 0.025), (None, None)])
    (tmp_path / "empty-record" / "tune_ae").mkdir(parents=True)
    (tmp_path / "empty-record" / experiment.META_FILE).write_text("")  # killed mid-write
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / ".mirror").mkdir()  # hidden: tune_ae's own
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    return tmp_path


def test_each_folder_gets_a_status_that_says_what_it_is(tmp_path):
    root = storage(tmp_path)
    lock.acquire(root / "live")  # a run holds it
    try:
        entries = {e.name: e for e in catalog.scan(root)}
    finally:
        lock.release(root / "live")
    assert [e.name for e in catalog.scan(root)][:4] == ["live", "cut", "done", "broke"]  # newest first
    assert set(entries) == {"done", "cut", "broke", "live", "empty-record", "photos"}
    status = {name: e.status for name, e in entries.items()}
    assert status == {"done": "finished", "cut": "interrupted", "broke": "failed", "live": "running",
                      "empty-record": "not complete", "photos": "not an experiment"}
    assert "does not read" in entries["empty-record"].why and entries["photos"].why
    done = entries["done"]
    assert (done.finished, done.total, done.kind, done.host) == (2, 2, "grid", "box")
    assert done.best == {64: 0.02, 512: 0.005} and done.ratio(64) == 2.0 and done.ratio(512) == 2.0
    assert done.duration_s == 62.0
    assert entries["cut"].best == {64: 0.03} and entries["cut"].ratio(64) is None  # no PCA recorded
    assert (entries["cut"].finished, entries["cut"].total) == (1, 2)
    assert json.loads(json.dumps(done.to_dict()))["x_pca"] == {"64": 2.0, "512": 2.0}


def test_an_older_folder_or_a_record_without_runs_never_breaks_the_list(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / experiment.LEGACY_META_FILE).write_text(json.dumps({"grid_name": "smoke", "grid": GRID.to_dict(),
                                                               "data": DATA, "runs": []}))
    odd = tmp_path / "odd"
    (odd / "tune_ae").mkdir(parents=True)
    (odd / experiment.META_FILE).write_text(json.dumps({"runs": [], "grid": {"axes": "not a grid"}}))
    entries = {e.name: e for e in catalog.scan(tmp_path)}
    assert entries["old"].status == "interrupted" and "older tune_ae" in entries["old"].why
    assert entries["odd"].status == "not complete" and "does not read" in entries["odd"].why
    assert catalog.scan(tmp_path / "missing") == []


def test_damaged_values_inside_readable_files_are_a_status_not_a_crash(tmp_path):
    bad_events = make(tmp_path, "events", "2026-12-01T10:00:00+00:00", [("done", 0.02), ("done", 0.005)])
    with (bad_events / record.TRIALS_FILE).open("a") as f:
        f.write(json.dumps({"event": "start", "trial": "x", "config": "abc", "sample": "y"}) + "\n")
    timings = make(tmp_path, "timings", "2026-12-01T10:00:00+00:00", [("done", 0.02), ("done", 0.005)])
    meta = json.loads((timings / experiment.META_FILE).read_text())
    meta["runs"][0]["timings"] = "x"
    (timings / experiment.META_FILE).write_text(json.dumps(meta))
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / experiment.LEGACY_META_FILE).write_text(json.dumps({"grid": {"hidden": [64], "seeds": 10**9}, "runs": []}))
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    undecodable = tmp_path / "caf\udce9"  # a name that is not UTF-8
    shutil.copytree(timings, undecodable)
    entries = {e.name: e for e in catalog.scan(tmp_path)}
    assert entries["events"].status == "finished" and entries["events"].best == {64: 0.02, 512: 0.005}
    assert entries["timings"].status == "finished" and entries["timings"].duration_s is None
    assert entries["huge"].status == "not complete" and "seeds must be a whole number" in entries["huge"].why
    assert "loop" not in entries and entries["caf\udce9"].status == "finished"
    shown = subprocess.run([sys.executable, "-m", "tune_ae", "list", str(tmp_path)], capture_output=True,
                           env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=60)
    assert shown.returncode == 0 and b"caf\\udce9" in shown.stdout and not shown.stderr, shown.stderr
