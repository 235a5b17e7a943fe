"""The plan, from experiment folders built by hand: every mode with a grid, a random and an
optuna search; the crossings that used to lie (a killed search, a name left with only its lock)."""

import json
import os
import time
import subprocess
import sys

import pytest

from tune_ae import experiment, lock, plan, ray_internals, record, run
from tune_ae.config import ConfigError, SweepSettings
from tune_ae.grids import Grid, Range

DATA = {"folder": "/data", "subset": None, "train_images": 1, "test_images": 1}
GRID = Grid({"hidden": (8, 16, 32), "epochs": (10,)})
RANDOM = Grid({"hidden": (8,), "epochs": (10,)}, ranges={"lr": Range(1e-4, 1e-2, log=True)}, search="random",
              num_samples=3)
OPTUNA = Grid({"hidden": (8,), "epochs": (10,)}, ranges={"lr": Range(1e-4, 1e-2, log=True)}, search="optuna",
              num_samples=4)


def make_experiment(tmp_path, grid, name="e"):
    folder = tmp_path / name
    experiment.write_meta(folder, "custom", grid, SweepSettings(storage_path=str(tmp_path), name=name), DATA,
                          experiment.this_run(None))
    return folder


def make_trial(folder, config, epochs_done=0, checkpoint_at=None, name=None, ended=None, value=0.5):
    """A trial folder as a sweep leaves it, and its record: begun; `ended` its end, if any."""
    config = {**Grid().trial_configs()[0].to_dict(), **config}
    name = name or plan.folder_name(config)
    trial_dir = folder / name
    trial_dir.mkdir(parents=True)
    (trial_dir / ray_internals.PARAMS_FILE).write_text(json.dumps(config))
    rows = [{**config, "epoch": e, "val_loss": 1 / e} for e in range(1, epochs_done + 1)]
    (trial_dir / "tune_ae_epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if checkpoint_at:
        checkpoint = trial_dir / f"checkpoint_{checkpoint_at:06d}"
        checkpoint.mkdir()
        (checkpoint / "state.pt").write_bytes(b"weights")
        (checkpoint / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:checkpoint_at]))
    r = record.Recorder(folder, ["hidden"])
    r.start(name, config)
    if ended:
        r.end(name, ended, epochs_done, value, by="asha" if ended == "stopped early" else None)
    return name


def save_tune_state(folder, names, status=None):
    """Tune's files as its last save left them, knowing the trials `names`: TERMINATED those the
    record has finished (as Tune would have them once it saved after their end), RUNNING the
    rest; or all `status`."""
    (folder / ray_internals.TUNER_FILE).write_bytes(b"pickled")
    entries = record.trials(folder)
    finished = {n for n, e in entries.items() if e.status in record.FINISHED}
    trials = [[json.dumps({"relative_logdir": n, "config": {"hidden": 8},
                           "status": status or ("TERMINATED" if n in finished else "RUNNING")}), "{}"] for n in names]
    (folder / "experiment_state-2026-12-01_00-00-00.json").write_text(json.dumps({"trial_data": trials}))


def make(tmp_path, *argv):
    return plan.make(run.build_parser().parse_args([*argv, "--storage-path", str(tmp_path)]), str(tmp_path))


def actions(p):
    return [(s.action, s.config["hidden"], s.epoch) for s in p.steps]


@pytest.mark.parametrize("flags, n, action", [
    (["--grid", "smoke"], 2, plan.TRAIN),
    (["--search", "random", "--lr", "1e-4:1e-2:log", "--num-samples", "3", "--hidden", "8"], 3, plan.TRAIN),
    (["--search", "optuna", "--lr", "1e-4:1e-2:log", "--num-samples", "4", "--hidden", "8"], 4, plan.SAMPLE),
])
def test_a_new_experiment_trains_every_trial(tmp_path, flags, n, action):
    p = make(tmp_path, *flags, "--name", "x")
    assert p.mode == "new" and [s.action for s in p.steps] == [action] * n and len(p.to_run) == n
    assert not (tmp_path / "x").exists()  # the plan writes nothing


@pytest.mark.parametrize("grid", [GRID, RANDOM, OPTUNA], ids=["grid", "random", "optuna"])
def test_resume_with_tunes_state_keeps_continues_retries_and_trains(tmp_path, grid):
    folder = make_experiment(tmp_path, grid)
    configs = [c.to_dict() for c in grid.trial_configs()] if grid.known_in_advance else \
        [{"hidden": 8, "epochs": 10, "lr": v} for v in (1e-3, 2e-3, 3e-3)]
    names = [make_trial(folder, configs[0], 10, 10, ended="done"),
             make_trial(folder, configs[1], 4, 3),  # running when the driver died: no end
             make_trial(folder, configs[2], 2, 2, ended="error")]
    save_tune_state(folder, names)
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "resume" and p.why == ""
    assert [(s.action, s.epoch, s.folder) for s in p.steps[:3]] == [
        (plan.KEEP_DONE, 10, names[0]), (plan.CONTINUE, 3, names[1]), (plan.RETRY, 2, names[2])]
    assert p.steps[1].checkpoint == "checkpoint_000003"
    assert len(p.steps) == grid.n_trials and len(p.to_run) == grid.n_trials - 1
    if not grid.known_in_advance:
        assert [s.action for s in p.steps[3:]] == [plan.SAMPLE] and [s.sample for s in p.steps] == [0, 1, 2, 3]


@pytest.mark.parametrize("grid", [GRID, RANDOM, OPTUNA], ids=["grid", "random", "optuna"])
def test_without_tunes_state_a_new_tuner_continues_from_the_record(tmp_path, grid):
    folder = make_experiment(tmp_path, grid)
    configs = [c.to_dict() for c in grid.trial_configs()] if grid.known_in_advance else \
        [{"hidden": 8, "epochs": 10, "lr": 1e-3}, {"hidden": 8, "epochs": 10, "lr": 2e-3}]
    make_trial(folder, configs[0], 3, ended="stopped early")
    make_trial(folder, configs[1], 3, 2)  # cut short, no end recorded: unfinished, never "stopped early"
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "continue" and p.why.startswith("it has no Tune state to restore")
    assert [s.action for s in p.steps[:2]] == [plan.KEEP_STOPPED, plan.CONTINUE]
    assert p.steps[0].epoch == 3 and len(p.steps) == grid.n_trials
    assert bool(p.replay) == (not grid.known_in_advance)  # an optuna searcher is rebuilt from the record


def test_a_sigkilled_search_plans_every_sample_once(tmp_path):
    """Case 1: four samples, two begun (one finished, one running), SIGKILL: Tune's last save
    knows only the first. A new Tuner: 4 samples, each once; the finished one kept, the running
    one continued in its own folder, two drawn anew."""
    folder = make_experiment(tmp_path, OPTUNA)
    done = make_trial(folder, {"hidden": 8, "epochs": 10, "lr": 1e-3}, 10, 10, name="a,trial=1", ended="done")
    running = make_trial(folder, {"hidden": 8, "epochs": 10, "lr": 5e-3}, 3, 2, name="b,trial=2")
    save_tune_state(folder, [done])
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "continue" and "misses trial(s) tune_ae's record has (b,trial=2)" in p.why
    assert [(s.action, s.folder, s.sample) for s in p.steps] == [
        (plan.KEEP_DONE, done, 0), (plan.CONTINUE, running, 1), (plan.SAMPLE, None, 2), (plan.SAMPLE, None, 3)]
    # Killed after its last checkpoint, before the driver recorded its end: done all the same,
    # and a searcher rebuilt from the record is told it, not handed it again.
    last = make_trial(folder, {"hidden": 8, "epochs": 10, "lr": 7e-3}, 10, 10, name="c,trial=3")
    p = make(tmp_path, "--resume", "--name", "e")
    assert [(s.action, s.folder) for s in p.steps[:3]] == [
        (plan.KEEP_DONE, done), (plan.CONTINUE, running), (plan.KEEP_DONE, last)]
    assert p.kept == {done: 0.5, last: pytest.approx(0.1)}  # the record's value; the checkpoint's last row's
    from tune_ae import search

    searcher = search.PointwiseOptuna(p.grid, "val_loss", "min", list(p.replay), p.kept)
    assert [config["lr"] for _, _, config in searcher.queued] == [5e-3] and searcher.total == 2
    grown = make(tmp_path, "--extend", "--name", "e", "--num-samples", "6")
    assert grown.mode == "extend" and grown.added == {"num_samples": [4, 6]}
    assert [s.action for s in grown.steps].count(plan.SAMPLE) == 3 and len(grown.steps) == 6


def test_a_state_cut_short_or_naming_gone_checkpoints_means_a_new_tuner(tmp_path):
    folder = make_experiment(tmp_path, GRID)
    name = make_trial(folder, GRID.trial_configs()[0].to_dict(), 4, 3)
    save_tune_state(folder, [name])
    (folder / "experiment_state-2026-12-02_00-00-00.json").write_text('{"trial_data": [[')  # cut by a kill
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "continue" and "JSONDecodeError" in p.why
    assert p.set_aside == ("experiment_state-2026-12-02_00-00-00.json",)
    assert (folder / "experiment_state-2026-12-02_00-00-00.json").exists()  # set aside by the sweep, not the plan
    metadata = json.dumps({"checkpoint_manager": {"value": b"checkpoint_000001".hex()}})
    state = {"trial_data": [[json.dumps({"relative_logdir": name, "status": "PAUSED", "config": {"hidden": 8}}), metadata]]}
    (folder / "experiment_state-2026-12-02_00-00-00.json").write_text(json.dumps(state))
    assert "checkpoints that are gone" in make(tmp_path, "--resume", "--name", "e").why


def test_a_name_left_with_only_its_lock_is_new_to_the_same_command(tmp_path):
    """Case 3: a sweep killed before its record leaves the lock (and perhaps Tune's log)."""
    (tmp_path / "X").mkdir()
    (tmp_path / "X" / lock.LOCK_FILE).write_text("{}")
    (tmp_path / "X" / "tune.log").write_text("")
    assert make(tmp_path, "--grid", "smoke", "--name", "X").mode == "new"
    with pytest.raises(ConfigError, match="nothing to resume: .* start it without --resume"):
        make(tmp_path, "--resume", "--name", "X")
    (tmp_path / "X" / "mine.txt").write_text("not tune_ae's")
    with pytest.raises(ConfigError, match="already exists"):
        make(tmp_path, "--grid", "smoke", "--name", "X")


def test_older_folder_names_are_adopted_and_strays_moved_aside(tmp_path):
    folder = make_experiment(tmp_path, GRID)
    make_trial(folder, GRID.trial_configs()[1].to_dict(), 2, 2, name="train_autoencoder_1_hidden=16")
    make_trial(folder, {"hidden": 1000, "epochs": 10}, 2, name="train_autoencoder_9_hidden=1000")
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.moves[0] == ("train_autoencoder_1_hidden=16", plan.folder_name(GRID.trial_configs()[1].to_dict()))
    assert p.moves[1][1].startswith(".abandoned-") and p.moves[1][1].endswith("/train_autoencoder_9_hidden=1000")


def test_dash_dash_plan_prints_the_plan_and_writes_nothing(tmp_path):
    folder = make_experiment(tmp_path, GRID)
    make_trial(folder, GRID.trial_configs()[0].to_dict(), 10, 10, ended="done")
    make_trial(folder, GRID.trial_configs()[1].to_dict(), 4, 3)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    done = subprocess.run([sys.executable, "-m", "tune_ae.run", "--resume", "--name", "e", "--storage-path",
                           str(tmp_path), "--plan"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TUNE_AE_DATA": ""})
    assert done.returncode == 0, done.stderr
    assert "mode: continue (it has no Tune state to restore" in done.stdout
    assert "h=8: keep (done, 10 epochs)" in done.stdout and "h=16: continue at epoch 4 from" in done.stdout
    assert "h=32: train from epoch 1" in done.stdout and "2 to run of 3" in done.stdout
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    code = ("import sys; from tune_ae import run; "
            f"run.make_plan(run.build_parser().parse_args(['--resume', '--name', 'e', '--storage-path', {str(tmp_path)!r}]));"
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stderr[-2000:]  # the plan starts no Ray, loads no torch


def test_a_new_tuner_sets_the_former_tuners_files_aside_so_a_kill_before_its_first_save_is_no_trap(tmp_path):
    """An --extend killed after it said "extended", before its Tuner first saved: Tune's files
    then were the former grid's, and Tune's restore would leave the added trials unstarted."""
    from tune_ae import sweep

    small = Grid({"hidden": (8,), "epochs": (10,)})
    folder = make_experiment(tmp_path, small)
    name = make_trial(folder, small.trial_configs()[0].to_dict(), 10, 10, ended="done")
    save_tune_state(folder, [name])
    (folder / "searcher-state-2026-12-01_00-00-00.pkl").write_bytes(b"")
    grown = make(tmp_path, "--extend", "--name", "e", "--seeds", "2")
    assert grown.mode == "extend" and set(grown.superseded) == {
        "tuner.pkl", "experiment_state-2026-12-01_00-00-00.json", "searcher-state-2026-12-01_00-00-00.pkl"}
    experiment.write_meta(folder, "custom", grown.grid, grown.settings, DATA, experiment.this_run(None), new_grid=True)
    sweep.prepare_folder(grown)  # what the extend did before the kill
    assert not (folder / "tuner.pkl").exists() and (folder / ".tuner.pkl.superseded").exists()
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "continue" and [s.action for s in p.steps] == [plan.KEEP_DONE, plan.TRAIN]


def test_a_trial_that_ended_after_tunes_last_save_is_not_run_again(tmp_path):
    """ASHA stopped it (or it finished), then a kill before Tune saved again: Tune's state still
    has it pending, and Tune's restore would run it again. The record wins: a new Tuner."""
    folder = make_experiment(tmp_path, GRID)
    configs = [c.to_dict() for c in GRID.trial_configs()]
    names = [make_trial(folder, configs[0], 3, 3, ended="stopped early"), make_trial(folder, configs[1], 3, 3)]
    save_tune_state(folder, names, "RUNNING")  # both
    state = next(folder.glob("experiment_state-*"))
    os.utime(state, (time.time() + 60, time.time() + 60))  # saved after the end: Tune's state is not behind...
    assert make(tmp_path, "--resume", "--name", "e").mode == "resume"  # ...(and Tune's stop goes by its scheduler)
    os.utime(state, (time.time() - 60, time.time() - 60))  # saved before it
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "continue" and "older than tune_ae's record (1 trial(s) ended after its last save)" in p.why
    assert [s.action for s in p.steps] == [plan.KEEP_STOPPED, plan.CONTINUE, plan.TRAIN]


def test_a_search_folder_the_record_does_not_name_is_moved_aside(tmp_path):
    folder = make_experiment(tmp_path, OPTUNA)
    make_trial(folder, {"hidden": 8, "epochs": 10, "lr": 1e-3}, 2, 2, name="a,trial=1")
    (folder / "b,trial=2").mkdir()  # its start line cut from the record by a kill
    (folder / "b,trial=2" / "tune_ae_epochs.jsonl").write_text("")
    p = make(tmp_path, "--resume", "--name", "e")
    assert [(a, b.split("/")[1]) for a, b in p.moves] == [("b,trial=2", "b,trial=2")]
    assert p.moves[0][1].startswith(".abandoned-")


def test_an_older_folder_without_a_record_takes_its_statuses_from_tunes_state_once(tmp_path):
    """An older tune_ae kept no record: a trial Tune's state has TERMINATED with epochs short of
    its config's was stopped early (ASHA), not interrupted; a run begins the record with it."""
    folder = make_experiment(tmp_path, GRID)
    configs = [c.to_dict() for c in GRID.trial_configs()]
    names = [make_trial(folder, configs[0], 3, 3, ended="stopped early"), make_trial(folder, configs[1], 3, 3)]
    record.path(folder).unlink()  # as an older tune_ae left it
    (folder / ray_internals.TUNER_FILE).write_bytes(b"pickled")
    trials = [[json.dumps({"relative_logdir": n, "status": s, "config": c}), "{}"]
              for n, s, c in zip(names, ("TERMINATED", "PAUSED"), configs)]
    (folder / "experiment_state-2026-12-01_00-00-00.json").write_text(json.dumps({"trial_data": trials}))
    p = make(tmp_path, "--resume", "--name", "e")
    assert [s.action for s in p.steps] == [plan.KEEP_STOPPED, plan.CONTINUE, plan.TRAIN]
    from tune_ae import results

    assert results.load_trials(folder).set_index("hidden")["status"].to_dict() == {
        8: "stopped early", 16: "interrupted", 32: "not started"}
    record.begin(folder)  # what a run does first
    assert [e["event"] for e in record.events(folder)] == ["start", "end", "start"]
    assert record.trials(folder)[names[0]].status == "stopped early"


def test_finished_trials_a_former_tuner_ran_do_not_stop_tunes_restore(tmp_path):
    """After a continue or an extend, Tune's state knows only its own Tuner's trials; the ones
    kept from before are finished: Tune's restore is still the one to carry on the search."""
    folder = make_experiment(tmp_path, OPTUNA)
    old = make_trial(folder, {"hidden": 8, "epochs": 10, "lr": 1e-3}, 10, 10, name="a,trial=1", ended="done")
    new = make_trial(folder, {"hidden": 8, "epochs": 10, "lr": 2e-3}, 3, 2, name="b,trial=2")
    save_tune_state(folder, [new])
    state = next(folder.glob("experiment_state-*"))
    saved = json.loads(state.read_text())
    saved["runner_data"] = {"_start_time": time.time() + 100, "_total_time": 5.0}  # saved after both ends
    state.write_text(json.dumps(saved))
    os.utime(state, (1, 1))  # a copied folder's file times say nothing: the state's own time counts
    p = make(tmp_path, "--resume", "--name", "e")
    assert p.mode == "resume" and p.kept == {old: 0.5}


@pytest.mark.parametrize("grid, flags, added", [
    (GRID, ["--seeds", "2"], {"seed": [1]}),
    (RANDOM, ["--num-samples", "4"], {"num_samples": [3, 4]}),
    (OPTUNA, ["--num-samples", "5"], {"num_samples": [4, 5]}),
], ids=["grid", "random", "optuna"])
def test_extend_keeps_what_finished_and_adds_the_rest(tmp_path, grid, flags, added):
    folder = make_experiment(tmp_path, grid)
    first = grid.trial_configs()[0].to_dict() if grid.known_in_advance else {"hidden": 8, "epochs": 10, "lr": 1e-3}
    done = make_trial(folder, first, 10, 10, ended="done")
    p = make(tmp_path, "--extend", "--name", "e", *flags)
    assert p.mode == "extend" and p.added == added and p.kept == {done: 0.5}
    grown = override_count(grid, added)
    assert len(p.steps) == grown and [s.action for s in p.steps].count(plan.KEEP_DONE) == 1
    assert len(p.to_run) == grown - 1


def override_count(grid, added) -> int:
    if "seed" in added:
        return grid.n_trials * (1 + len(added["seed"]))
    return len(grid.points()) * added["num_samples"][1]


def test_a_resume_may_fix_the_cpus_of_an_auto_experiment_and_the_plan_says_so(tmp_path):
    folder = make_experiment(tmp_path, GRID)  # recorded with --cpus-per-trial auto, the default
    assert experiment.read_meta(folder)["settings"]["cpus_per_trial"] is None
    p = make(tmp_path, "--resume", "--name", "e", "--cpus-per-trial", "1")
    assert p.changed == {"cpus_per_trial": [None, 1.0]} and p.settings.cpus_per_trial == 1.0
    assert "setting cpus_per_trial: auto -> 1.0" in plan.describe(p)
    assert make(tmp_path, "--resume", "--name", "e").changed == {}  # no flag: the recorded auto stays
