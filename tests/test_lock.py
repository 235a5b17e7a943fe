"""One run per experiment folder: the lock names its holder, and a dead holder's lock is free."""

import os
import signal
import subprocess
import sys

import pytest

from tune_ae import lock
from tune_ae.config import ConfigError, SweepSettings

HOLD = "import sys, time; from tune_ae import lock; lock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_held_folder_is_refused_with_its_holder_and_free_once_the_holder_is_gone(tmp_path):
    folder = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for check in (lock.acquire, lock.check_free):
            with pytest.raises(ConfigError, match=rf"in use by another run \(host .+, pid {holder.pid}, started "):
                check(folder)
        holder.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel drops the lock
        holder.wait()
    finally:
        holder.kill()
    lock.check_free(folder)
    lock.acquire(folder)
    try:
        assert f'"pid": {os.getpid()}' in (folder / lock.LOCK_FILE).read_text()
    finally:
        lock.release(folder)


def test_default_names_stay_unique_within_one_second(tmp_path):
    from tune_ae.grids import GRIDS
    from tune_ae.plan import Plan
    from tune_ae.run import claim

    settings = SweepSettings(storage_path=str(tmp_path), name="paper-20261201-120000")
    plan = Plan("new", "paper", GRIDS["paper"], settings, None)
    claimed, created = claim(plan, default_name=True)
    first, second = claimed.settings, claim(plan, default_name=True)[0].settings
    try:
        assert created and first.name == settings.name and second.name == settings.name + "-2"
        with pytest.raises(ConfigError, match="in use by another run"):  # the same name, given explicitly
            claim(plan, default_name=False)
    finally:
        lock.release(tmp_path / first.name)
        lock.release(tmp_path / second.name)
    (tmp_path / first.name / "tune_ae").mkdir()
    (tmp_path / first.name / "tune_ae" / "experiment.json").write_text("{}")
    with pytest.raises(ConfigError, match="already exists"):  # free, but not new
        claim(plan, default_name=False)
