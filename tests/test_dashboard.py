"""The live page (dashboard.py), in a real Chromium: during a sweep and after it; a journal cut
short; the port in use; Ctrl-C. The journal it serves (journal.py): tests/test_journal.py."""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tune_ae import journal, results

from conftest import end_session, journal_trials, start_cli, wait_for

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
    wrong = subprocess.run([sys.executable, "-m", "tune_ae.dashboard", str(tmp_path)], capture_output=True, text=True,
                           timeout=60)
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


def trial_workers(session: int) -> list[psutil.Process]:
    """The trial processes of the driver whose session is `session` (Tune names them so)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if os.getsid(process.pid) == session and (process.info["cmdline"] or [""])[0].startswith("ray::ImplicitFunc"):
                found.append(process)
        except (ProcessLookupError, psutil.Error):
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
