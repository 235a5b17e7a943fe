"""Every use of Ray Tune's undocumented parts, in one place, each checked against Ray 2.60.0.

tune_ae relies on a few things Ray Tune does not document as API: the files it writes (its
saved experiment state above all), a restored Tuner's RunConfig, a Trial's retry limit and
resources, and switches of its signal handling and console output. Everything else goes
through the documented API (`tune.Tuner`, `tune.report`, `tune.Callback`, ...).

Whoever upgrades Ray re-checks what is here; tests/test_ray_internals.py fails, naming the
part, where an upgrade moved one. No `import ray` at the top: results.py and signals.py read
these names, and they load without Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
from pathlib import Path

CHECKED_WITH = "2.60.0"  # the Ray release every use below was read against (pyproject pins it)

# --- Files Tune writes (2.60.0: ray/air/constants.py EXPR_*_FILE, ray/tune/execution/tune_controller.py) ---
PARAMS_FILE = "params.json"  # a trial folder's config, written when the trial first starts
RESULT_FILE = "result.json"  # a JSON line per reported result (tune_ae reads its own log instead)
ERROR_FILE = "error.txt"  # a failed trial's traceback(s), appended per failure
CHECKPOINT_DIR = re.compile(r"checkpoint_\d+")  # checkpoint_000007: numbered from Tune's saved state
STATE_GLOB = "experiment_state-*.json"  # newest by name (a timestamp)
TUNER_FILE = "tuner.pkl"  # the pickled Tuner: Tuner.can_restore is its existence (ray/tune/impl/tuner_internal.py)
# Everything Tune saves of a Tuner at the experiment's top level (ray/tune/execution/tune_controller.py,
# search/search_generator.py, search/basic_variant.py): what a Tuner of its own replaces.
TUNER_STATE_GLOBS = (TUNER_FILE, STATE_GLOB, "basic-variant-state-*.json", "search_gen_state-*.json",
                     "searcher-state-*.pkl")


def state_files(folder: str | Path) -> list[Path]:
    """Tune's saved experiment states in `folder`, oldest first (Tune restores the last)."""
    return sorted(Path(folder).glob(STATE_GLOB))


def state_trials(state: dict) -> list[tuple[dict, str]]:
    """(trial record, run metadata as saved: a JSON string) per trial of a parsed state file.

    2.60.0 (tune/execution/tune_controller.py, save_to_dir): `trial_data` is a list of
    [trial JSON, metadata JSON] string pairs; a record holds `relative_logdir` (the trial
    folder's name), `status` (PENDING, RUNNING, PAUSED, TERMINATED, ERROR), `config` and
    `evaluated_params` (the swept values). Raises ValueError/KeyError/TypeError on a file
    whose trial records are not that shape (cut short, another Ray's); the metadata is parsed
    by whoever needs it (checkpoint_names), so that a bad one costs its own trial only."""
    return [(json.loads(trial_json), metadata_json) for trial_json, metadata_json in state["trial_data"]]


def newest_trials(folder: str | Path) -> list[dict]:
    """The trial records of the newest experiment state in `folder` that parses (none: [])."""
    for path in reversed(state_files(folder)):
        try:
            return [record for record, _ in state_trials(json.loads(path.read_text()))]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return []


def saved_at(state: dict) -> float | None:
    """When Tune saved a parsed state (seconds since the epoch), from inside it, so that a copied
    folder (new file times) tells the same. 2.60.0: `runner_data` holds the experiment's
    `_start_time` and the `_total_time` it had run by the save."""
    try:
        return float(state["runner_data"]["_start_time"]) + float(state["runner_data"]["_total_time"])
    except (KeyError, TypeError, ValueError):
        return None


def checkpoint_names(metadata_json: str) -> set[str]:
    """The checkpoint folders a trial's run metadata (state_trials' JSON string) refers to.

    2.60.0: the metadata's `checkpoint_manager` is stored pickled, as hex (`{"value": ...}`);
    the folder names are plain text inside the pickle. Empty when it is not there or unreadable."""
    try:
        pickled = bytes.fromhex(json.loads(metadata_json)["checkpoint_manager"]["value"])
    except (ValueError, KeyError, TypeError):
        return set()
    return {name.decode() for name in re.findall(rb"checkpoint_\d{6}", pickled)}


def trial_folder_name(trial_dir: str) -> str:
    """The name of a trial's folder under the experiment on the storage path, from the trial's
    working folder (`tune.get_context().get_trial_dir()`): 2.60.0 gives both the same name
    (ray/train/_internal/storage.py, StorageContext: trial_fs_path and trial_working_directory),
    which is how a trial finds its own checkpoints on the storage path (trainable.resume_point)."""
    return Path(trial_dir).name


def number_checkpoints_after(index: int) -> bool:
    """In a trial new to its Tuner (Tune's own count starts over): its next checkpoint folder is
    numbered after `index` (checkpoint_<index + 1>), so that none in its folder is overwritten;
    returns whether it was. A trial Tune restored or retried keeps Tune's count, which Tune's
    rotation of its checkpoints follows.

    2.60.0 (ray/train/_internal/session.py, storage.py): the worker's session keeps
    `storage.current_checkpoint_index`, which `report` increments before it persists a
    checkpoint; it starts from Tune's saved state, or at -1 for a trial of a new Tuner, whose
    checkpoints would then overwrite the folder's older ones from checkpoint_000000 on."""
    from ray.train._internal.session import get_session

    storage = get_session().storage
    if storage.current_checkpoint_index >= 0:  # Tune's restore (or a retry) counts on from its state: its rotation
        return False
    storage.current_checkpoint_index = index
    return True


# --- Trial objects, as Tune hands them to callbacks (ray/tune/experiment/trial.py) ---
# Reading `status`, `config`, `trial_id`, `path` and `last_result` is what Tune's Callback
# docs show; these three are not documented.

def failures(trial) -> int:
    """How many times the trial has failed so far (2.60.0: `trial.run_metadata.num_failures`)."""
    return trial.run_metadata.num_failures


def set_retries(trial, max_failures: int) -> None:
    """A restored trial keeps the retry limit it was saved with (2.60.0: plain attribute)."""
    trial.max_failures = max_failures


def set_resources(trial, resources: dict) -> None:
    """New resources for a trial that is not running (2.60.0: `Trial.update_resources`, which
    Tune's ResourceChangingScheduler uses; it raises for a running trial)."""
    trial.update_resources(dict(resources))


def set_checkpoints_kept(trial, keep: int) -> None:
    """A restored trial keeps the checkpoint rotation it was saved with: 2.60.0 holds it in
    `trial.run_metadata.checkpoint_manager._checkpoint_config` (ray/train/_internal/
    checkpoint_manager.py), read at each new checkpoint; a new CheckpointConfig with `keep`
    goes in its place (the run config's only reaches trials Tune creates). CheckpointConfig is
    a dataclass in 2.60.0: the copy keeps its other fields."""
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_config = dataclasses.replace(manager._checkpoint_config, num_to_keep=keep)


# --- Tuner.restore (ray/tune/tuner.py, ray/tune/impl/tuner_internal.py) ---

def replace_run_config(tuner, new, fields: tuple[str, ...]) -> None:
    """Put `fields` of RunConfig `new` into a restored Tuner's own RunConfig.

    2.60.0: `Tuner.restore` takes no RunConfig and unpickles the one saved with the
    experiment; the driver-side Tuner keeps it in `_local_tuner` (a TunerInternal) and
    `get_run_config()` returns the object itself, so setting its fields takes effect. In Ray
    Client mode (ray://) there is no `_local_tuner`: run.py refuses ray:// up front.
    """
    restored = tuner._local_tuner.get_run_config()
    for field in fields:
        setattr(restored, field, getattr(new, field))


def free_cpus(node_id: str) -> float:
    """The CPUs no task or actor holds on node `node_id`, as Ray's control store last heard
    (2.60.0: the DeveloperAPI ray._private.state.available_resources_per_node, ~0.3 ms a call)."""
    from ray._private import state

    return state.available_resources_per_node().get(node_id, {}).get("CPU", 0.0)


def replace_scheduler(tuner, new) -> None:
    """Put scheduler `new` in a restored Tuner's TuneConfig: 2.60.0 unpickles the TuneConfig
    saved when the Tuner was made into `_local_tuner._tune_config`, read when the fit starts."""
    tuner._local_tuner._tune_config.scheduler = new


# --- Switches read from the environment ---
# 2.60.0, ray/tune/tune.py: Tune installs a SIGINT handler during a fit
# unless this is set; tune_ae routes SIGINT itself (signals.py).
DISABLE_TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"
# 2.60.0, same place: during a fit Tune's graceful stop ("stop and save state") is the handler
# it installs for SIGUSR1; signals.py calls it on the first stop signal.
TUNE_STOP_SIGNAL = signal.SIGUSR1
# 2.60.0, ray/_private/ray_constants.py: the C++ core's handler for fatal signals (SIGTERM included)
# prints a stack and kills the process; off in the driver, where SIGTERM is an interruption.
DISABLE_CORE_SIGNAL_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
# 2.60.0, ray/tune/experimental/output.py: "0" selects the legacy console output, which is
# silent at verbose=0 (the newer one prints a configuration box even then).
LEGACY_CONSOLE = ("RAY_AIR_NEW_OUTPUT", "0")


# --- The embedded Ray's start (ray.init's `_system_config`, which Ray marks "testing only") ---
# 2.60.0, src/ray/common/ray_config_def.h: the raylet prestarts one idle worker per CPU when
# the first driver connects. Tune never uses them: its trial actors carry a runtime_env
# (tune/execution/class_cache.py sets env_vars), so they get workers of their own. Off, a
# smoke sweep on 2 cores starts ~3 s sooner and spends ~4 CPU-seconds less (measured
# 2026-12-02). An unknown key makes the GCS exit at start: test_ray_internals checks it exists.
EMBEDDED_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}


# --- The embedded Ray's processes, in sessions of their own (2.60.0: ray/_private/services.py) ---
# ray.init starts the GCS, the raylet (which starts the agents and the workers) and the
# monitors through services.start_ray_process, which creates each with `services.ConsolePopen`
# and blocks SIGINT in it, but leaves it in the driver's process group. A stop signal sent to
# the group (a closed terminal's SIGHUP, `timeout`, `kill -- -PGID`, a shell's `kill %1`) then
# reached the GCS and the raylet too: they exited, the driver's graceful stop found no Ray,
# waited 60 s for the GCS and died with exit 1, without its tables or the resume command.
# In a session of its own a daemon gets no signal meant for the driver's group or terminal;
# ray.shutdown still stops it by its pid, and it still dies with the driver (Ray's fate-sharing
# is prctl(PR_SET_PDEATHSIG), not the group).
# Only where the kernel fate-shares (Linux): elsewhere Ray starts a reaper that stops the daemons
# by killing its own process group when the driver dies, which a session of its own would defeat.
@contextlib.contextmanager
def daemons_in_own_sessions():
    """While Ray starts: every process ray.init spawns leads a new session (setsid), where the
    kernel ends it with the driver; elsewhere Ray's processes start as Ray starts them."""
    from ray._private import services, utils

    if not utils.detect_fate_sharing_support():
        yield
        return
    plain = services.ConsolePopen

    class OwnSession(plain):
        def __init__(self, *args, **kwargs):
            kwargs["start_new_session"] = True
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = plain


# --- Asking a cluster's GCS whether it takes this driver's token (2.60.0: ray/_raylet.pyx GcsClient) ---
def token_refused(address: str, wait_s: float = 5.0) -> bool:
    """Whether the Ray cluster at HOST:PORT refuses this process's auth token.

    ray.init answers a refused token only after ~20 s (ray/_private/node.py retries the GCS
    NUM_REDIS_GET_RETRIES times, a second apart); the GCS client Ray builds underneath says so
    at once, raising AuthenticationError when it is constructed. It takes no timeout and waits
    ~40 s on a port that is not a GCS: so it is asked in a thread, for `wait_s`. Any other
    outcome is left to ray.init to report."""
    import threading

    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    refused: list[bool] = []

    def ask():
        try:
            GcsClient(address=address)
            refused.append(False)
        except AuthenticationError:
            refused.append(True)
        except Exception:
            refused.append(False)

    asking = threading.Thread(target=ask, name="tune_ae-token-probe", daemon=True)
    asking.start()
    asking.join(wait_s)
    return bool(refused and refused[0])
