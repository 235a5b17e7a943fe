"""One sweep per experiment folder: an exclusive lock taken before anything is written.

`flock` on `<experiment>/.tune_ae.lock`, held for the whole run. The kernel drops it when its
holder ends in any way (SIGKILL included), so a lock whose holder is gone is simply taken
over. The file names the holder (host, pid, start time) for the run that is refused.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import platform
import time
import warnings
from pathlib import Path

from tune_ae.config import ConfigError

LOCK_FILE = ".tune_ae.lock"
PROBE_RETRIES = 20  # a run's lock attempts, 10 ms apart, before another holder is taken to be a run
_held: dict[Path, int] = {}  # folder -> file descriptor of a lock this process holds


def holder(folder: Path) -> str:
    try:
        info = json.loads((folder / LOCK_FILE).read_text())
        return f"host {info['host']}, pid {info['pid']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"


def in_use(folder: Path) -> str:
    return f"experiment {folder} is in use by another run ({holder(folder)}); wait for it to end, or stop it first"


def acquire(folder: Path) -> None:
    """Lock `folder` (created if missing) for this process, or raise ConfigError naming the holder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigError(f"cannot lock {folder} ({err.strerror}): a run needs to write there; "
                          "check the folder's permissions and free space") from None
    for attempt in range(PROBE_RETRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)  # a file system without locks (some network mounts): run, but say so
                warnings.warn(f"cannot lock {folder} ({err.strerror}); make sure no other run uses it", stacklevel=2)
                return
            if attempt == PROBE_RETRIES - 1:
                os.close(fd)
                raise ConfigError(in_use(folder)) from None
            time.sleep(0.01)  # `held` (a listing, the page's poll) holds it shared for microseconds
    info = {"host": platform.node(), "pid": os.getpid(),
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    _held[folder] = fd
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except OSError:  # a full disk: the lock holds all the same, the holder just goes unnamed
        pass


def check_free(folder: Path) -> None:
    """Raise the in-use error at once if another run holds `folder` (the real lock comes later,
    with acquire; this only answers early, before the slow imports)."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ConfigError(in_use(Path(folder))) from None
    finally:
        os.close(fd)


def held(folder: Path) -> bool:
    """Whether a run holds `folder`'s lock (check_free's question, as a yes or no)."""
    try:
        check_free(folder)
        return False
    except ConfigError:
        return True


def release(folder: Path) -> None:
    fd = _held.pop(Path(folder), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
