"""Scale-out: cluster/ configs validated offline, and a real multi-node Ray cluster on loopback."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tune_ae import results

from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"


def pinned_ray_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"ray\[tune\]==([0-9.]+)"', text).group(1)


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_configs_pass_rays_validation(name):
    import jsonschema
    from ray.autoscaler._private.commands import prepare_config
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(config))
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["max_workers"] >= 1 and "RAY_AUTH_MODE=token" in " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    with pytest.raises(jsonschema.ValidationError):  # the validation can fail
        validate_config(prepare_config({**config, "head_node_typo": "head"}))


def test_aws_opens_only_ssh_and_not_to_the_world():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert all(ip["CidrIp"] != "0.0.0.0/0" for r in rules for ip in r["IpRanges"])


@pytest.mark.parametrize("name, kind", [("rayjob.yaml", "RayJob"), ("raycluster.yaml", "RayCluster")])
def test_kuberay_manifests_carry_the_required_fields(name, kind):
    manifest = yaml.safe_load((CLUSTER / "kuberay" / name).read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == kind and manifest["metadata"]["name"]
    spec = manifest["spec"]["rayClusterSpec"] if kind == "RayJob" else manifest["spec"]
    if kind == "RayJob":
        assert manifest["spec"]["entrypoint"].startswith("python -m tune_ae.run")
    assert spec["rayVersion"] == pinned_ray_version() and spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"  # nothing exposed outside the cluster
    (gpu,) = spec["workerGroupSpecs"]
    assert {"groupName", "rayStartParams", "template", "maxReplicas"} <= set(gpu)
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_every_ray_version_in_cluster_matches_the_project():
    pinned = pinned_ray_version()
    found = set()
    for path in CLUSTER.rglob("*"):
        if path.is_file():
            text = path.read_text()
            found |= set(re.findall(r"rayproject/ray:([0-9.]+)", text))
            found |= set(re.findall(r"ray\[tune\]==([0-9.]+)", text))
            found |= set(re.findall(r'rayVersion: "([0-9.]+)"', text))
    assert found == {pinned}


def test_no_secrets_in_cluster_files():
    for path in CLUSTER.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"(AKIA[0-9A-Z]{16}|RAY_AUTH_TOKEN=[0-9a-f]{16,}|BEGIN [A-Z ]*PRIVATE KEY)", text), path


# --- a real multi-node cluster: head + worker as separate Ray nodes on 127.0.0.1 -------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_pids(state_dir: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"{state_dir}/ray/"], capture_output=True, text=True).stdout.split()
    alive = []
    for pid in found:
        stat = subprocess.run(["ps", "-o", "stat=", "-p", pid], capture_output=True, text=True).stdout.strip()
        if stat and not stat.startswith("Z"):
            alive.append(pid)
    return alive


@pytest.fixture
def local_cluster():
    state_dir = tempfile.mkdtemp(prefix="tac", dir="/tmp")  # short: Ray's socket paths are limited
    env = {**os.environ, "TUNE_AE_CLUSTER_DIR": state_dir, "TUNE_AE_CLUSTER_PORT": str(free_port()),
           "RAY": str(Path(sys.executable).parent / "ray")}
    started = subprocess.run(["bash", str(CLUSTER / "local.sh"), "start", "1"], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr + started.stdout
    address = Path(state_dir, "address").read_text().strip()
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": f"{state_dir}/token"}
    yield {"address": address, "env": ray_env, "dir": state_dir}
    stopped = subprocess.run(["bash", str(CLUSTER / "local.sh"), "stop"], env=env, capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    assert cluster_pids(state_dir) == [], "local.sh stop left processes behind"


def test_smoke_sweep_on_two_nodes(local_cluster, real_data_dir, tmp_path):
    done = run_cli("--grid", "smoke", "--address", local_cluster["address"], "--data-dir", str(real_data_dir),
                   "--storage-path", str(tmp_path), "--name", "multi", "--no-report", env=local_cluster["env"])
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = pd.read_parquet(tmp_path / "multi" / "epochs.parquet")
    trials = pd.read_parquet(tmp_path / "multi" / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "done").all()
    assert epochs.groupby("trial_id")["epoch"].apply(list).tolist() == [[1, 2, 3]] * 2
    assert epochs["node_id"].nunique() == 2  # one trial per node: each node has 1 CPU


def test_sweep_survives_losing_a_worker_node(local_cluster, real_data_dir, tmp_path):
    folder = tmp_path / "fault"
    driver = subprocess.Popen(
        [sys.executable, "-m", "tune_ae.run", "--grid", "smoke", "--hidden", "128", "256", "--subset", "6000",
         "--epochs", "12", "--batch-size", "100", "--checkpoint-every", "2", "--address", local_cluster["address"],
         "--data-dir", str(real_data_dir), "--storage-path", str(tmp_path), "--name", "fault", "--no-report"],
        env={**os.environ, **local_cluster["env"]}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        # Both trials running (one per node), each with a checkpoint to resume from.
        while len({p.parent for p in folder.glob("*/checkpoint_*")}) < 2:
            assert time.monotonic() < deadline and driver.poll() is None, "trials never checkpointed"
            time.sleep(0.2)
        # The worker node's raylet (socket "raylet.1"), then its trial worker processes.
        raylet = subprocess.run(["pgrep", "-f", f"{local_cluster['dir']}/ray/.*sockets/raylet.1 "],
                                capture_output=True, text=True).stdout.split()
        assert len(raylet) == 1
        children = subprocess.run(["pgrep", "-P", raylet[0]], capture_output=True, text=True).stdout.split()
        for pid in [raylet[0], *children]:
            os.kill(int(pid), signal.SIGKILL)
        output, _ = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, output[-3000:]
    epochs = pd.read_parquet(folder / "epochs.parquet")
    trials = pd.read_parquet(folder / "trials.parquet")
    assert (trials["status"] == "done").all()
    assert epochs.groupby("trial_id")["epoch"].apply(list).tolist() == [list(range(1, 13))] * 2
    # The trial that lost its node went on on the head from a checkpoint, not from epoch 1.
    moved = []
    for trial_dir in results.trial_dirs(folder):
        reports = results.read_reports(trial_dir)
        switch = [i for i in range(1, len(reports)) if reports[i]["node_id"] != reports[i - 1]["node_id"]]
        if switch:
            before, after = reports[switch[0] - 1], reports[switch[0]]
            moved.append((before["epoch"], after["epoch"]))
    assert len(moved) == 1
    last_on_lost_node, first_on_head = moved[0]
    assert 1 < first_on_head <= last_on_lost_node + 1
