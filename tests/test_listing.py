"""`tune-ae list`: the experiments of a storage path as a table or JSON, in a fresh process."""

import json
import subprocess
import sys

from test_catalog import storage


def tune_ae(*args):
    return subprocess.run([sys.executable, "-m", "tune_ae", *args], capture_output=True, text=True, timeout=60)


def test_the_table_and_the_json_list_every_folder_newest_first(tmp_path):
    root = storage(tmp_path)
    shown = tune_ae("list", str(root))
    assert shown.returncode == 0, shown.stderr
    header, *lines = shown.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "KIND", "STATUS", "TRIALS"]
    assert [line.split()[0] for line in lines] == ["live", "cut", "done", "broke", "empty-record", "photos"]
    done = next(line for line in lines if line.startswith("done "))
    assert "finished" in done and "2/2" in done and "64: 0.02 (2x)  512: 0.005 (2x)" in done and "1m02s" in done
    assert "interrupted" in lines[0]  # its lock is free here: no run holds it
    assert "not an experiment (no tune_ae/experiment.json)" in lines[-1]
    rows = json.loads(tune_ae("list", str(root), "--json").stdout)
    assert [r["name"] for r in rows][:2] == ["live", "cut"] and rows[2]["x_pca"] == {"64": 2.0, "512": 2.0}


def test_a_missing_folder_is_one_line_and_an_empty_one_says_so(tmp_path):
    missing = tune_ae("list", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no folder at" in missing.stderr
    empty = tune_ae("list", str(tmp_path))
    assert empty.returncode == 0 and empty.stdout.strip() == f"no experiments in {tmp_path}"
