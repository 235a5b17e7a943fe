"""A process that ends when another does: `tune-ae dashboard --stop-with PID` (the page that
`run --dashboard` starts ends with its driver, however the driver ends, SIGKILL included)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def stop_with(pid: int) -> None:
    """Stop this page, as Ctrl-C does (SIGINT: its stop line, exit 0), once process `pid` has ended,
    however it ended (SIGKILL included), within about a second.

    Where `pid` is this process's parent on Linux, the kernel sends the signal when the parent
    ends (PR_SET_PDEATHSIG, set here rather than before exec, which a Popen without preexec_fn
    cannot); the parent may have ended before it was set, so the parent is looked at once more
    right after. (The kernel means the parent's thread that started this process: run.py starts
    it from the driver's main thread.) Anywhere else, a daemon thread looks once a second."""
    if os.getppid() == pid and parent_death_signal(signal.SIGINT):
        if os.getppid() != pid:  # reparented already: the parent ended before the signal was set
            os.kill(os.getpid(), signal.SIGINT)
        return
    threading.Thread(target=watch, args=(pid,), name="stop-with", daemon=True).start()


def parent_death_signal(signum: int) -> bool:
    """Ask Linux for `signum` when this process's parent ends; False where that is not to be had."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signum), ctypes.c_ulong(0),
                          ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):  # no libc to be found, or no prctl in it
        return False


def watch(pid: int, every: float = 1.0) -> None:
    """Look at process `pid` every `every` seconds; SIGINT this process once it has ended."""
    while not ended(pid):
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGINT)


def ended(pid: int) -> bool:
    """Whether process `pid` has ended: gone, or a zombie (ended, its exit status not yet collected)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process, alive
        return False
    try:  # Linux: the state follows the command name, which may itself hold spaces and parentheses
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:  # collected just now; or a system without /proc, where kill's answer stands
        return Path("/proc").is_dir()
    except (OSError, IndexError):
        return False
