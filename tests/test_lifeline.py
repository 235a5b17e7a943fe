"""lifeline.py: when a process has ended (the page's --stop-with; its end to end: test_run.py)."""

import os
import signal
import subprocess
import sys

from tune_ae import lifeline


def test_a_process_has_ended_once_it_is_a_zombie_or_gone_and_not_before():
    assert not lifeline.ended(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not lifeline.ended(child.pid)
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, its status not yet collected
        assert lifeline.ended(child.pid)  # a zombie counts as ended
    finally:
        child.kill()
        child.wait()
    assert lifeline.ended(child.pid)  # collected: gone
