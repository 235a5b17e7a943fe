"""The contract with Ray Tune's undocumented parts (tune_ae/ray_internals.py).

Each test names the part it checks; a failure after a Ray upgrade says which use to re-read
in the new Ray before changing CHECKED_WITH. The tests that take `fitted` share a real (tiny) fit.
"""

import inspect
import json
import os
import signal

import pytest
import ray
from ray import tune

from tune_ae import ray_internals


def test_ray_is_the_release_the_internals_were_checked_against():
    assert ray.__version__ == ray_internals.CHECKED_WITH, (
        f"Ray is {ray.__version__}, tune_ae/ray_internals.py was checked against {ray_internals.CHECKED_WITH}: "
        "re-check every use there against the new Ray, then update CHECKED_WITH (and the pins)")


def test_file_names_are_tunes():
    from ray.air import constants

    assert (constants.EXPR_PARAM_FILE, constants.EXPR_RESULT_FILE, constants.EXPR_ERROR_FILE) == (
        ray_internals.PARAMS_FILE, ray_internals.RESULT_FILE, ray_internals.ERROR_FILE), "Tune renamed its trial files"


def test_tunes_state_sync_reaches_only_the_top_level_where_tune_aes_record_is_not(tmp_path):
    """Tune copies the experiment folder's top-level *.json and *.pkl to its staging folder and
    back at each save (a kill can leave one empty): tune_ae's record lies in a subfolder."""
    import pyarrow.fs
    from ray.train._internal.storage import _list_at_fs_path
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
    from ray.tune.impl.tuner_internal import _TUNER_PKL

    from tune_ae import experiment, record

    source = inspect.getsource(_ExperimentCheckpointManager.sync_down_experiment_state)
    assert '_list_at_fs_path(' in source and 'path.endswith(".json") or path.endswith(".pkl")' in source
    for name in (experiment.META_FILE, record.TRIALS_FILE, "top.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    listed = _list_at_fs_path(pyarrow.fs.LocalFileSystem(), str(tmp_path))
    assert "top.json" in listed and not [p for p in listed if "/" in p], listed  # the top level only
    assert _TUNER_PKL == ray_internals.TUNER_FILE, "Tuner.can_restore looks for another file"


def test_a_trials_checkpoint_count_starts_where_the_internals_say():
    from ray.train._internal import session, storage

    assert inspect.signature(storage.StorageContext).parameters["current_checkpoint_index"].default == -1
    assert "self.storage._update_checkpoint_index(metrics)" in inspect.getsource(session._TrainSession.report)
    assert callable(session.get_session)


def test_the_embedded_rays_system_config_keys_are_known_to_this_ray():
    """An unknown key does not raise: the GCS exits at start and ray.init times out. The raylet
    and the core library carry each key's name (ray_config_def.h is compiled in)."""
    from pathlib import Path

    binaries = [Path(ray.__file__).parent / "core/src/ray/raylet/raylet", Path(ray._raylet.__file__)]
    for key in ray_internals.EMBEDDED_SYSTEM_CONFIG:
        assert all(key.encode() in b.read_bytes() for b in binaries), f"Ray no longer knows the system config {key!r}"

def test_switches_are_read_where_documented():
    from ray._private import ray_constants
    from ray.tune import tune as tune_run
    from ray.tune.experimental import output

    assert ray_internals.DISABLE_TUNE_SIGINT in inspect.getsource(tune_run), "Tune no longer reads its SIGINT switch"
    assert "signal.SIGUSR1" in inspect.getsource(tune_run), "Tune's graceful stop is no longer on SIGUSR1"
    assert hasattr(ray_constants, ray_internals.DISABLE_CORE_SIGNAL_HANDLER), "Ray dropped its core signal switch"
    name, off = ray_internals.LEGACY_CONSOLE
    assert f'os.environ.get("{name}", "1") == "{off}"' in inspect.getsource(output), "Tune's console switch moved"


def test_trial_retries_and_resources_can_be_set():
    from ray.tune.experiment import Trial

    trial = Trial("__fake", config={"hidden": 8}, stub=True)
    ray_internals.set_retries(trial, 7)
    ray_internals.set_resources(trial, {"cpu": 0.5, "gpu": 0.25})
    assert trial.max_failures == 7
    assert trial.placement_group_factory.required_resources == {"CPU": 0.5, "GPU": 0.25}
    assert ray_internals.failures(trial) == 0
    ray_internals.set_checkpoints_kept(trial, 5)
    assert trial.run_metadata.checkpoint_manager.checkpoint_config.num_to_keep == 5


def test_the_checkpoint_rotation_is_read_where_it_is_set():
    from ray.train._internal.checkpoint_manager import _CheckpointManager

    assert "self._checkpoint_config.num_to_keep" in inspect.getsource(_CheckpointManager.register_checkpoint), \
        "Tune's checkpoint manager no longer reads its rotation from _checkpoint_config"


def report_with_checkpoint():
    """A trainable that saves one checkpoint (made here: Ray's workers cannot import this test module)."""
    def trainable(config):
        import os

        folder = tune.get_context().get_trial_dir() + "/ckpt"
        os.makedirs(folder, exist_ok=True)
        tune.report({"epoch": 1}, checkpoint=tune.Checkpoint.from_directory(folder))

    return trainable


@pytest.fixture(scope="module")
def fitted(ray_session, tmp_path_factory):
    """A two-trial fit whose trials save a checkpoint each; what Tune's handlers were during it.
    One fit for the module's tests, read only; its two trials share one worker (2 CPUs each)."""
    seen = {}

    class Look(tune.Callback):
        def on_step_begin(self, iteration, trials, **info):
            seen["usr1"], seen["int"] = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGINT)

    folder = tmp_path_factory.mktemp("fitted")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(ray_internals.DISABLE_TUNE_SIGINT, "1")
        before = signal.getsignal(signal.SIGINT)
        tune.Tuner(tune.with_resources(report_with_checkpoint(), {"cpu": 2}),
                   param_space={"hidden": tune.grid_search([8, 16])},
                   run_config=tune.RunConfig(storage_path=str(folder), name="x", callbacks=[Look()], verbose=0)).fit()
    return folder / "x", seen, before


def test_saved_state_and_signal_handlers_of_a_real_fit(fitted):
    folder, seen, sigint_before = fitted
    assert callable(seen["usr1"]) and seen["usr1"] not in (signal.SIG_DFL, signal.SIG_IGN), "no Tune stop handler"
    assert seen["int"] is sigint_before, "Tune took SIGINT despite its switch"
    states = ray_internals.state_files(folder)
    assert states, f"no {ray_internals.STATE_GLOB} in the experiment folder"
    trials = ray_internals.state_trials(json.loads(states[-1].read_text()))
    assert len(trials) == 2
    for record, metadata in trials:
        assert {"relative_logdir", "status", "config", "evaluated_params"} <= set(record), sorted(record)
        assert record["status"] == "TERMINATED" and record["evaluated_params"] == {"hidden": record["config"]["hidden"]}
        trial_dir = folder / record["relative_logdir"]
        assert (trial_dir / ray_internals.PARAMS_FILE).is_file()
        names = ray_internals.checkpoint_names(metadata)
        assert names and all(ray_internals.CHECKPOINT_DIR.fullmatch(n) and (trial_dir / n).is_dir() for n in names), \
            "the checkpoint folders are no longer named in the saved state's checkpoint manager"


def test_a_restored_tuners_run_config_is_the_one_it_runs_with(fitted):
    folder, _, _ = fitted
    tuner = tune.Tuner.restore(str(folder), trainable=report_with_checkpoint())
    ray_internals.replace_run_config(tuner, tune.RunConfig(verbose=0, stop={"epoch": 3}), ("verbose", "stop"))
    config = tuner._local_tuner.get_run_config()
    assert (config.verbose, config.stop) == (0, {"epoch": 3}), "a restored Tuner's run config is no longer reachable"


def test_a_trials_folder_on_the_storage_path_is_named_as_its_working_folder(ray_session, tmp_path):
    def trainable(config):
        tune.report({"epoch": 1, "folder": ray_internals.trial_folder_name(tune.get_context().get_trial_dir())})

    grid = tune.Tuner(trainable, run_config=tune.RunConfig(storage_path=str(tmp_path), name="n", verbose=0)).fit()
    (stored,) = [p.parent.name for p in (tmp_path / "n").glob("*/" + ray_internals.PARAMS_FILE)]
    assert grid[0].metrics["folder"] == stored, "a trial can no longer find its folder on the storage path by name"


def test_the_embedded_rays_processes_start_in_sessions_of_their_own(monkeypatch):
    """A stop signal to the driver's process group must not reach the GCS or the raylet."""
    from ray._private import services, utils

    plain = services.ConsolePopen
    assert "ConsolePopen(" in inspect.getsource(services.start_ray_process)  # how ray.init spawns each one
    with ray_internals.daemons_in_own_sessions():
        child = services.ConsolePopen(["sleep", "30"])
    try:
        assert os.getsid(child.pid) == child.pid != os.getsid(0)
    finally:
        child.kill()
        child.wait()
    assert services.ConsolePopen is plain
    # Without the kernel's fate-sharing Ray's reaper kills its own group: the daemons stay in it.
    monkeypatch.setattr(utils, "detect_fate_sharing_support", lambda: False)
    with ray_internals.daemons_in_own_sessions():
        assert services.ConsolePopen is plain
