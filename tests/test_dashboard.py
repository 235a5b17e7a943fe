"""The live page (dashboard.py), in a real Chromium: during a sweep and after it; a journal cut
short; the port in use; Ctrl-C. The journal it serves (journal.py): tests/test_journal.py."""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tune_ae import dashboard, journal, lock, results

from conftest import end_session, journal_trials, start_cli, wait_for
from test_journal import cut_between_lines, made_experiment

CHROMIUM = Path(os.environ.get("TUNE_AE_CHROMIUM", "/usr/bin/chromium"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path, port: int, *extra: str, **popen) -> subprocess.Popen:
    """`python -m tune_ae.dashboard FOLDER --port PORT`, once it answers."""
    page = subprocess.Popen([sys.executable, "-m", "tune_ae.dashboard", str(folder), "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    deadline = time.monotonic() + 60
    while not select.select([page.stdout], [], [], 0.2)[0]:  # its address once it serves (not merely the port)
        assert page.poll() is None, page.communicate()[1]
        assert time.monotonic() < deadline, "the dashboard never said its address"
    said = page.stdout.readline()
    assert said.startswith("dashboard of "), said + page.communicate(timeout=60)[1]
    socket.create_connection(("127.0.0.1", port), timeout=10).close()
    page.said = said
    return page


def stop(page: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl-C; (exit code, all it printed, its stderr). Killed if it has not ended within 30 s."""
    page.send_signal(signal.SIGINT)
    try:
        out, err = page.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        page.kill()
        out, err = page.communicate()
        raise AssertionError(f"the page did not stop on SIGINT within 30 s: {err[-2000:]}") from None
    return page.returncode, page.said + out, err


def test_a_journal_cut_short_is_rebuilt_the_port_in_use_is_one_line_and_ctrl_c_stops_it(smoke_experiment, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(smoke_experiment[0], folder)
    path = journal.path(folder)
    path.write_bytes(path.read_bytes()[:-25])  # a kill mid-write
    assert not journal.readable(folder)
    port = free_port()
    page = serve(folder, port)
    stuck = socket.create_connection(("127.0.0.1", port))
    try:
        assert journal.readable(folder) and len(journal_trials(folder)) == 2
        # A client that sends half a request and waits holds up only itself (a thread per request),
        # and Ctrl-C below still stops the page while it waits.
        stuck.sendall(b"GET / HTTP/1.1\r\n")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
            assert "<h1>Experiment s</h1>" in answer.read().decode()
        second = subprocess.run([sys.executable, "-m", "tune_ae.dashboard", str(folder), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert lines[0] == f"error: port {port} on 127.0.0.1 is in use; pass --port with a free one"
    finally:
        code, out, err = stop(page)
        stuck.close()
    assert code == 0 and "dashboard stopped" in out and "Traceback" not in err, err
    assert f"dashboard of s: http://127.0.0.1:{port}/" in out
    wrong = subprocess.run([sys.executable, "-m", "tune_ae.dashboard", str(tmp_path / "missing")], capture_output=True,
                           text=True, timeout=60)  # (a folder of experiments, such as tmp_path, gets their page)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ") and "is not a tune_ae experiment" in wrong.stderr
    # Started with SIGINT ignored (a shell script's background job): SIGINT still stops it.
    wide = serve(folder, free_port(), "--host", "0.0.0.0",
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    code, out, err = stop(wide)
    assert code == 0 and "warning: serving on 0.0.0.0" in err and "SSH port forward" in err


def trial_panel(page, port: int, number: int) -> dict:
    """What the trials list shows of trial `number` (its panel, as a person selects it): state,
    hidden size, and the steps of its learning curve (the intermediate values)."""
    page.goto(f"http://127.0.0.1:{port}/dashboard/studies/0/trials?numbers={number}")
    page.wait_for_function(f"document.body.innerText.includes('Trial {number} (trial_id=')", timeout=30_000)
    text = page.inner_text("body").replace("\t", " ")
    panel = text[text.index(f"Trial {number} (trial_id="):]
    curve = panel.split("Intermediate Values", 1)[1].split("Parameter", 1)[0] if "Intermediate Values" in panel else ""
    hidden = re.search(r"^hidden (\d+)$", panel, flags=re.M)
    return {"state": panel.splitlines()[1].strip(), "hidden": int(hidden.group(1)) if hidden else None,
            "epochs": [int(step) for step in re.findall(r"^(\d+) [-0-9.e]+$", curve, flags=re.M)], "text": text}


def panels(page, port: int, until, timeout: float = 60) -> dict:
    """Trial panels by hidden size once `until(panels)` holds, looking again (a person pressing F5)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = {p["hidden"]: p for p in (trial_panel(page, port, n) for n in (0, 1))}
        except Exception:  # the study or its second trial not there yet
            found = {}
        if (found and until(found)) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture
def browser():
    if not CHROMIUM.is_file():
        message = f"Chromium not at {CHROMIUM} (apt-get install -y chromium, or set TUNE_AE_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # As root (CI) Chromium needs --no-sandbox.
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield chromium.new_page(viewport={"width": 1400, "height": 1000})
        chromium.close()


EPOCHS = 3


def trial_workers(driver: int) -> list[psutil.Process]:
    """The trial processes of the driver `driver` (Tune names them so): its Ray's workers descend from it."""
    found = []
    for process in psutil.Process(driver).children(recursive=True):
        try:
            if (process.cmdline() or [""])[0].startswith("ray::ImplicitFunc"):
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_the_page_in_a_browser_while_the_sweep_runs_and_after(browser, real_data_dir, tmp_path):
    """A small sweep with a trial that cannot allocate its model: what a person sees live, then after.

    The narrow trial is frozen (SIGSTOP) after its first epoch while the page is read, so that
    "live" does not depend on how fast this machine trains; it finishes once thawed. The same
    sweep shows the command's account of a failed trial (it fails every retry; the other
    finishes; exit 1): one sweep for both, as each costs a Ray start."""
    port = free_port()
    driver = start_cli("--grid", "smoke", "--hidden", "32", "1000000000", "--epochs", str(EPOCHS), "--batch-size", "10",
                       "--max-failures", "1", "--data-dir", str(real_data_dir), "--storage-path", str(tmp_path),
                       "--name", "live", "--dashboard", str(port))
    folder = tmp_path / "live"
    frozen = []
    try:
        before = []  # what the driver printed up to the page's address
        for line in driver.stdout:
            before.append(line)
            if line.startswith("dashboard: "):
                assert line.startswith(f"dashboard: http://127.0.0.1:{port}/"), line
                break
        # An epoch of minibatches of 10 takes about a second here: time enough to hold the trial after one.
        wait_for(lambda: driver.poll() is not None or any(
            log.read_text().strip() for log in folder.glob(f"hidden=32,*/{results.EPOCHS_LOG}")),
            "the narrow trial's first epoch", every=0.02)
        assert driver.poll() is None, "the sweep ended before its first epoch was seen"
        frozen = trial_workers(driver.pid)
        assert frozen, "no trial process found to hold"
        for process in frozen:
            process.suspend()
        # Live: the narrow trial running, some of its epochs on the page; the other failed.
        live = panels(browser, port, lambda p: 32 in p and p[32]["state"] == "Running" and p[32]["epochs"])
        assert driver.poll() is None, "the sweep ended before the page was seen"
        assert live[32]["state"] == "Running" and 1 <= len(live[32]["epochs"]) < EPOCHS, live
        for process in frozen:
            process.resume()
        out, err = driver.communicate(timeout=300)
    finally:
        for process in frozen:
            try:
                process.resume()
            except psutil.Error:
                pass
        end_session(driver.pid)
    assert driver.returncode == 1 and "1 trial(s) failed" in err and "Traceback" not in err, err[-2000:]
    out = "".join(before) + out
    assert "1 error, 1 done (of 2 trials)" in out and "ERROR after 2 failure(s)" in out, out
    trials = pd.read_csv(folder / "trials.csv").set_index("hidden")
    assert trials.loc[32, "status"] == "done" and trials.loc[1000000000, "status"] == "error"
    assert "can't allocate memory" in trials.loc[1000000000, "error"]
    report_md = (folder / "report.md").read_text()
    assert "## Trials that did not finish" in report_md and f"| 1000000000 | 0 | {EPOCHS} | error |" in report_md

    # After: the same folder, served on its own; the report is written by now.
    page = serve(folder, port)
    try:
        done = panels(browser, port, lambda p: p.get(32, {}).get("state") == "Complete")
        assert "2 Trials" in done[32]["text"]
        assert done[32]["state"] == "Complete" and done[32]["epochs"] == list(range(1, EPOCHS + 1))
        assert done[1000000000]["state"] == "Fail" and done[1000000000]["epochs"] == []
        browser.goto(f"http://127.0.0.1:{port}/")
        assert browser.get_by_role("link", name="report.md").is_visible()
        assert browser.locator("img[src='/files/figures/loss_curves.png']").count() == 1
        browser.get_by_role("link", name="Live view").click()
        browser.wait_for_function("document.body.innerText.includes('Intermediate values')", timeout=30_000)
        shot = Path(os.environ.get("TUNE_AE_SCREENSHOTS", tmp_path)) / "dashboard.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        stop(page)


def test_a_page_whose_serving_fails_does_not_end_as_if_stopped():
    """The server's thread dying (a bug, the socket lost) is raised where Ctrl-C is awaited: not exit 0."""
    from types import SimpleNamespace

    from tune_ae import dashboard

    def broken():
        raise OSError("the socket is gone")

    with pytest.raises(OSError, match="the socket is gone"):
        dashboard.serve_until_interrupted(SimpleNamespace(serve_forever=broken, shutdown=lambda: None))


def served_trials(port: int) -> list[tuple[str, list[int]]]:
    """(state, epochs of its learning curve) of each trial the page serves, from its API."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/0", timeout=30) as answer:
        study = json.load(answer)
    return [(t["state"], [v["step"] for v in t["intermediate_values"]]) for t in study["trials"]]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_a_journal_behind_the_tables_is_rebuilt_unless_a_sweep_runs(tmp_path):
    """Cut between two lines (a kill), the journal reads, but shows a finished trial running with
    part of its curve: the page rebuilds it from the tables. A running sweep's it leaves to its driver."""
    folder = made_experiment(tmp_path / "exp")
    cut_between_lines(folder, 3)  # h=64's last epoch and its end
    lock.acquire(folder)
    try:
        assert dashboard.journal_to_serve(folder) == (journal.path(folder), False)
        assert journal.lagging(folder) == ["hidden=64"]  # the driver's to write
    finally:
        lock.release(folder)
    assert dashboard.journal_to_serve(folder) == (journal.path(folder), False)
    assert [(t.state.name, sorted(t.intermediate_values)) for t in journal_trials(folder)] == [
        ("COMPLETE", [1, 2, 3]), ("COMPLETE", [1, 2, 3])]


# A read-only folder, simulated: the tests run as root, whom chmod does not stop, and mounting a
# read-only file system needs privileges a test machine may not give. Every Python open for
# writing under the folder fails with EROFS, as on a read-only mount; the page's only writes there
# are the journal's rebuild (optuna's JournalFileBackend creates its file with open).
READ_ONLY = """
import builtins, errno, io, os
_folder, _open = os.environ["READ_ONLY_FOLDER"], io.open
def _read_only_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") \\
            and os.path.abspath(os.fsdecode(os.fspath(file))).startswith(_folder + os.sep):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(os.fspath(file)))
    return _open(file, mode, *args, **kwargs)
builtins.open = io.open = _read_only_open
"""


def test_a_read_only_folder_is_served_from_a_journal_rebuilt_outside_it(tmp_path):
    folder = made_experiment(tmp_path / "exp").resolve()
    journal.path(folder).write_bytes(journal.path(folder).read_bytes()[:-25])  # a kill mid-write: to be rebuilt
    before = journal.path(folder).read_bytes()
    inject, temporary = tmp_path / "inject", tmp_path / "tmp"
    inject.mkdir()
    temporary.mkdir()
    (inject / "sitecustomize.py").write_text(READ_ONLY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")])),
           "READ_ONLY_FOLDER": str(folder), "TMPDIR": str(temporary)}
    port = free_port()
    page = serve(folder, port, env=env)
    try:
        assert served_trials(port) == [("Complete", [1, 2, 3]), ("Complete", [1, 2, 3])]
        assert len(list(temporary.iterdir())) == 1  # the rebuilt journal, outside the folder
    finally:
        code, out, err = stop(page)
    assert code == 0 and "dashboard stopped" in out, err
    assert err.splitlines() == [f"warning: {folder} is read-only here (Read-only file system): the page shows its "
                                "tables as they are now, not live (from a journal rebuilt in a temporary file)"]
    assert journal.path(folder).read_bytes() == before and list(temporary.iterdir()) == []


# The page's throwaway parent, as run.py's driver starts it (pipes it reads, --stop-with its own
# pid); it says the page's pid once the page serves, then waits to be killed.
PARENT = """
import os, subprocess, sys, time
page = subprocess.Popen([sys.executable, "-m", "tune_ae.dashboard", sys.argv[1], "--port", sys.argv[2],
                         "--stop-with", str(os.getpid())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
said = page.stdout.readline()
print(page.pid, said.startswith("dashboard of "), flush=True)
time.sleep(600)
"""
# Starts PARENT as a child subreaper (PR_SET_CHILD_SUBREAPER): the page, orphaned when PARENT is
# killed, becomes this process's child, whose exit code it collects and says.
HARNESS = """
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(ctypes.c_int(36), ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
parent = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=subprocess.PIPE, text=True)
page_pid, serving = parent.stdout.readline().split()
print(parent.pid, page_pid, serving, flush=True)
parent.wait()
print(os.waitstatus_to_exitcode(os.waitpid(int(page_pid), 0)[1]), flush=True)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal and a subreaper are Linux's")
def test_the_page_stops_when_its_parent_is_killed(tmp_path):
    folder = made_experiment(tmp_path / "exp")
    port = free_port()
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, PARENT, str(folder), str(port)],
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert select.select([harness.stdout], [], [], 60)[0], "the page never served"
        parent_pid, page_pid, serving = harness.stdout.readline().split()
        assert serving == "True" and not port_free(port)
        os.kill(int(parent_pid), signal.SIGKILL)  # no chance to stop the page itself
        killed = time.monotonic()
        assert select.select([harness.stdout], [], [], 10)[0], "the page outlived its parent by 10 s"
        code, ended = int(harness.stdout.readline()), time.monotonic() - killed
        assert code == 0 and ended < 3, (code, ended)  # the stop line's pipe is gone with the parent: no failure
        assert port_free(port)
    finally:
        end_session(harness.pid)  # the harness, and the parent and the page if a check failed before their end
        harness.wait()


def test_the_page_stops_when_the_process_it_stops_with_ends(tmp_path):
    """A process not its parent: looked at once a second. Ended but not yet collected (a zombie)
    counts as ended."""
    folder = made_experiment(tmp_path / "exp")
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    port, page = free_port(), None
    try:
        page = serve(folder, port, "--stop-with", str(watched.pid))
        time.sleep(1.5)
        assert page.poll() is None  # not before
        watched.kill()  # not waited for until the page has ended
        killed = time.monotonic()
        out, err = page.communicate(timeout=10)
        ended = time.monotonic() - killed
    finally:
        watched.kill()
        watched.wait()
        if page is not None:
            page.kill()
    assert page.returncode == 0 and out.strip() == "dashboard stopped" and err == "", err
    assert ended < 3 and port_free(port), ended


def test_stop_with_takes_a_process_id(tmp_path, capsys):
    folder = made_experiment(tmp_path / "exp")
    assert dashboard.main([str(folder), "--stop-with", "0"]) == 2
    assert capsys.readouterr().err == "error: --stop-with takes a process id (a positive integer), got 0\n"


def test_a_storage_paths_page_lists_every_experiment_opens_one_and_compares_two(browser, smoke_experiment, tmp_path):
    """`tune-ae dashboard STORAGE` on a folder with a finished, an interrupted and a running
    experiment (copies of the smoke sweep; one's record given a start with no end, one's lock
    held here), a folder that is not an experiment and a record cut short."""
    root = tmp_path / "store"
    for name in ("finished", "interrupted", "running"):
        shutil.copytree(smoke_experiment[0], root / name)
    entries = [json.loads(line) for line in (root / "interrupted" / "tune_ae" / "trials.jsonl").read_text().splitlines()]
    start = next(e for e in entries if e["event"] == "start")
    with (root / "interrupted" / "tune_ae" / "trials.jsonl").open("a") as f:
        f.write(json.dumps({**start, "at": time.time()}) + "\n")  # begun again, never ended: the run was killed
    (root / "photos").mkdir()
    (root / "half" / "tune_ae").mkdir(parents=True)
    (root / "half" / "tune_ae" / "experiment.json").write_text('{"runs": [')
    lock.acquire(root / "running")
    port = free_port()
    page = serve(root, port)
    try:
        assert page.said.startswith(f"dashboard of the experiments in {root}: http://127.0.0.1:{port}/")
        browser.goto(f"http://127.0.0.1:{port}/")
        statuses = {row.get_attribute("data-name"): row.locator(".status").inner_text()
                    for row in browser.locator("#rows tr").all()}
        assert statuses["finished"] == "finished" and statuses["interrupted"] == "interrupted"
        assert statuses["running"] == "running" and statuses["photos"].startswith("not an experiment")
        assert statuses["half"].startswith("not complete (its record does not read")
        shot = Path(os.environ.get("TUNE_AE_SCREENSHOTS", tmp_path))
        shot.mkdir(parents=True, exist_ok=True)
        browser.screenshot(path=str(shot / "experiments.png"), full_page=True)

        browser.get_by_role("link", name="finished", exact=True).click()  # one click: its curves
        browser.wait_for_function("document.body.innerText.includes('Intermediate values')", timeout=30_000)
        assert "val_loss" in browser.inner_text("body")  # the objective by its name, not "Objective 0"

        browser.goto(f"http://127.0.0.1:{port}/")
        browser.locator("input[value=finished]").check()
        browser.locator("input[value=interrupted]").check()
        browser.locator("#compare").click()
        browser.wait_for_function("document.querySelector('#curves') && document.querySelector('#curves').complete "
                                  "&& document.querySelector('#final').complete", timeout=60_000)
        assert browser.locator("h1").inner_text() == "Compared: finished, interrupted"
        header = browser.locator("#compared th").all_inner_texts()
        assert header == ["h", "finished", "interrupted", "PCA, k = h"]
        for image in ("#final", "#curves"):
            assert browser.eval_on_selector(image, "i => i.naturalWidth") > 300
        browser.screenshot(path=str(shot / "compare.png"), full_page=True)

        refused = urllib.request.Request(f"http://127.0.0.1:{port}/api/studies/0", method="DELETE")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(refused, timeout=30)
        assert answer.value.code == 403  # read-only: optuna-dashboard's delete refused
        assert (root / "finished" / journal.JOURNAL).is_file()
    finally:
        stop(page)
        lock.release(root / "running")
