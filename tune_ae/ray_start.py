"""Ray up and down for one sweep: an embedded single-node Ray with a private auth token, or a
cluster joined with one clear line when it cannot be; and Ray down whatever signal comes.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import ray

import tune_ae
from tune_ae import preflight, ray_internals, signals
from tune_ae.config import ConfigError

CONNECT_TIMEOUT_S = 30  # an unreachable --address answers within this
TOKEN_PREFIX = "tune_ae-token-"  # the embedded Ray's private token folder: <tmp>/tune_ae-token-<pid>-<random>


@contextmanager
def deadline(seconds: int, message: str):
    """Raise ConfigError(message) if the block runs longer than `seconds` (main thread only)."""

    def expire(signum, frame):
        raise ConfigError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def private_token() -> Path | None:
    """The embedded Ray's auth token in a new file, mode 600, in a new folder, mode 700.

    Left alone, Ray writes it to ~/.ray/auth_token readable by every user (mode 644). Not
    used when auth is off or the caller chose a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH).
    Returns the folder, for `run` to remove when Ray is down.
    """
    if os.environ.get("RAY_AUTH_MODE") == "disabled" or {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
        return None
    remove_stale_tokens()
    # Mode 700, an unpredictable name that starts with our pid (so a later run knows when it is stale).
    folder = Path(tempfile.mkdtemp(prefix=f"{TOKEN_PREFIX}{os.getpid()}-"))
    token = folder / "token"
    with open(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    return folder


def remove_stale_tokens() -> None:
    """Token folders of earlier runs that ended without removing theirs (SIGKILL): their pid is gone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TOKEN_PREFIX}*-*"):
        pid = folder.name[len(TOKEN_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive under another user, or gone already
            continue


def shipped_code() -> dict:
    """Ray's runtime environment that sends this tune_ae to every node of a cluster: the nodes
    need its dependencies (torch, ray, pandas, ...), not tune_ae itself, and always run the
    driver's version of it."""
    return {"py_modules": [str(Path(tune_ae.__file__).parent)], "excludes": ["__pycache__"]}


def start_ray(address: str | None) -> None:
    """Join `address`, or start an embedded single-node Ray sized to this machine."""
    # Trials print nothing useful to the console: their errors land in error.txt and Progress says so.
    # Ray's C++ core would install a SIGTERM handler that prints a stack and kills the driver;
    # tune_ae's (signals.py) stops the sweep instead. Its Python side sets SIGTERM handlers
    # that end with sys.exit while it starts: that SystemExit is a SIGTERM, an interruption.
    os.environ.setdefault(ray_internals.DISABLE_CORE_SIGNAL_HANDLER, "1")
    if not address:
        with signal_during_start(), ray_internals.daemons_in_own_sessions():  # a signal to the group is the driver's
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     _system_config=ray_internals.EMBEDDED_SYSTEM_CONFIG)
        signals.install()
        return
    preflight.check_reachable(address)
    try:
        with deadline(CONNECT_TIMEOUT_S, f"the Ray cluster at {address} did not answer within {CONNECT_TIMEOUT_S} s; "
                                         "check that it runs Ray 2.60.0 and that its token is set (RAY_AUTH_TOKEN)"), \
                core_log_aside() as core_log, signal_during_start():
            if ray_internals.token_refused(address):  # at once, where ray.init takes ~20 s to give up
                raise ConnectionError("authentication: the cluster refused the token")
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=shipped_code())
        signals.install()
    except ConnectionError as err:
        said = f"{err} {''.join(core_log)}".lower()
        if "authentication" in said or "unauthenticated" in said or "token" in said:
            raise ConfigError(f"the Ray cluster at {address} refused this driver's token; set RAY_AUTH_TOKEN "
                              "(or RAY_AUTH_TOKEN_PATH) to the cluster's token") from None
        raise ConfigError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}; "
                          "start one with `ray start --head` or drop --address to run on this machine") from None


@contextmanager
def signal_during_start():
    try:
        yield
    except SystemExit:  # raised only by the SIGTERM handlers ray.init installs
        signals.received.append(signal.SIGTERM)
        raise signals.Interrupted(signal.SIGTERM) from None


@contextmanager
def core_log_aside():
    """Ray's C++ core logs a failed connection to stderr line by line (~20 lines for a refused
    token): while joining, that goes to a file, read for the cause and then removed."""
    sys.stderr.flush()
    saved = os.dup(2)
    said: list[str] = []  # the log's text, once joining is over
    with tempfile.TemporaryDirectory(prefix="tune_ae-connect-") as folder:
        path = Path(folder) / "core.log"
        with open(path, "w") as log:
            os.dup2(log.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            said.append(path.read_text(errors="replace"))


def stop_ray(token_folder: Path | None) -> float:
    """Ray down and the embedded Ray's token removed, whatever signal comes; returns the seconds it took."""
    with signals.held():  # a second signal must not leave Ray running or the token behind
        clock = time.perf_counter()
        try:
            ray.shutdown()
        finally:
            signals.install()  # ray.shutdown resets SIGTERM's action to the default (death) underneath Python
            if token_folder:
                shutil.rmtree(token_folder, ignore_errors=True)
                os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    return time.perf_counter() - clock
