"""Scale-out: cluster/ configs validated offline, and a real multi-node Ray cluster on loopback."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
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


def test_aws_uses_your_security_group_which_the_launcher_leaves_alone():
    """A launcher-made group would get SSH from 0.0.0.0/0; with SecurityGroupIds on every node type it makes none."""
    from ray.autoscaler._private.aws.config import _configure_security_group
    from ray.autoscaler._private.commands import prepare_config

    config = prepare_config(yaml.safe_load((CLUSTER / "aws.yaml").read_text()))
    assert "security_group" not in config["provider"]
    groups = {name: t["node_config"]["SecurityGroupIds"] for name, t in config["available_node_types"].items()}
    assert set(groups) == {"head", "gpu_worker"} and len({tuple(g) for g in groups.values()}) == 1
    before = yaml.safe_dump(config)
    assert yaml.safe_dump(_configure_security_group(config)) == before  # untouched: no group created or widened
    readme = (CLUSTER / "README.md").read_text()
    assert "authorize-security-group-ingress --group-id \"$SG\" --protocol tcp --port 22 --cidr" in readme
    assert "--protocol -1 --source-group \"$SG\"" in readme


def test_gcp_workers_have_no_public_ip_and_the_head_is_tagged_for_ssh():
    config = yaml.safe_load((CLUSTER / "gcp.yaml").read_text())
    head, worker = (config["available_node_types"][n]["node_config"] for n in ("head", "gpu_worker"))
    assert [i.get("accessConfigs") for i in worker["networkInterfaces"]] == [None]
    assert head["networkInterfaces"][0]["accessConfigs"] and head["tags"]["items"] == ["tune-ae-head"]
    readme = (CLUSTER / "README.md").read_text()
    assert "--allow tcp:22" in readme and "--target-tags tune-ae-head" in readme and "default-allow-ssh" in readme


def test_kuberay_network_policy_admits_only_the_cluster_and_the_submitters():
    policy = yaml.safe_load((CLUSTER / "kuberay" / "networkpolicy.yaml").read_text())
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    label = policy["spec"]["podSelector"]["matchLabels"]
    assert label == {"tune-ae/cluster": "true"}
    own, submitters = policy["spec"]["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": label}}]}
    assert "namespaceSelector" in submitters["from"][0] and submitters["ports"] == [{"protocol": "TCP", "port": 8265}]
    for name in ("rayjob.yaml", "raycluster.yaml"):  # every Ray pod carries the label the policy selects
        manifest = yaml.safe_load((CLUSTER / "kuberay" / name).read_text())
        spec = manifest["spec"]["rayClusterSpec"] if manifest["kind"] == "RayJob" else manifest["spec"]
        templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
        assert all(t["metadata"]["labels"] == label for t in templates), name


def test_nodes_get_the_dependencies_not_tune_ae():
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[]", d)[0] for d in dependencies}
    for path in (CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml", CLUSTER / "Dockerfile"):
        text = path.read_text()
        install = " ".join(line for line in text.splitlines() if "pip install" in line or line.startswith("    \""))
        assert all(f'"{name}' in install for name in names), path
        assert "tune_ae" not in install and "-e " not in install and "/home/ray/tune_ae" not in text, path
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert "working_dir" in job["spec"]["runtimeEnvYAML"]


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


def start_cluster(node_env: dict | None = None) -> dict:
    """`local.sh start 1` (head + 1 worker) in its default, new private folder; `node_env`
    reaches the nodes. stop_cluster ends it."""
    # local.sh remembers its last cluster under XDG_CACHE_HOME: the same one for start and stop.
    env = {**os.environ, "TUNE_AE_CLUSTER_PORT": str(free_port()), "RAY": str(Path(sys.executable).parent / "ray"),
           "XDG_CACHE_HOME": tempfile.mkdtemp(prefix="tac-cache"), **(node_env or {})}
    env.pop("TUNE_AE_CLUSTER_DIR", None)
    started = subprocess.run(["bash", str(CLUSTER / "local.sh"), "start", "1"], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr + started.stdout
    state_dir = re.search(r"state in (\S+)\. To use it", started.stdout).group(1)
    address = Path(state_dir, "address").read_text().strip()
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": f"{state_dir}/token"}
    return {"address": address, "env": ray_env, "dir": state_dir, "bystanders": [], "script_env": env, "stopped": False}


def stop_cluster(cluster: dict) -> None:
    """`local.sh stop`, then nothing of the cluster may be left but the bystanders (once; again is a no-op)."""
    if cluster["stopped"]:
        return
    cluster["stopped"] = True
    stopped = subprocess.run(["bash", str(CLUSTER / "local.sh"), "stop"], env=cluster["script_env"],
                             capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    shutil.rmtree(cluster["script_env"]["XDG_CACHE_HOME"], ignore_errors=True)
    left = set(cluster_pids(cluster["dir"])) - {str(p) for p in cluster["bystanders"]}
    assert session_pids(cluster["dir"]) == [] and not left, "local.sh stop left processes behind"


@contextmanager
def started_cluster(node_env: dict | None = None):
    cluster = start_cluster(node_env)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def session_pids(state_dir: str) -> list[str]:
    """Processes in the sessions local.sh recorded for its nodes (the file is gone after stop)."""
    sessions = Path(state_dir, "sessions")
    sids = sessions.read_text().split() if sessions.is_file() else []
    return [pid for sid in sids for pid in subprocess.run(["pgrep", "-s", sid], capture_output=True, text=True).stdout.split()]


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """One two-node cluster for the module's tests, in the order they run: its state and
    listeners, a wrong token, a sweep across both nodes that loses the worker node, and last
    its `stop`. Started the default way (the folder from mktemp), and its nodes cannot import
    tune_ae (a broken one first on their path): what runs there is what the driver ships."""
    broken = tmp_path_factory.mktemp("broken") / "tune_ae"
    broken.mkdir()
    (broken / "__init__.py").write_text('raise ImportError("no usable tune_ae on this node")\n')
    with started_cluster({"PYTHONPATH": str(broken.parent)}) as cluster:
        yield cluster


def listeners(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process name) of every TCP listener owned by `pids`, from the kernel's socket table."""
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in table.splitlines():
        fields = line.split()
        owners = re.findall(r'\("([^"]+)",pid=(\d+)', line)
        found += [(fields[3], name) for name, pid in owners if int(pid) in pids]
    return found


# What Ray 2.60.0 binds beyond loopback, whatever --node-ip-address says (cluster/README.md, "What listens").
UNCONFINABLE = re.compile(r"^(gcs_server|raylet|python3?|ray::.*)$")


def non_loopback(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(address, name) for address, name in found
            if not address.startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:"))]


def test_local_cluster_state_is_private_and_its_listeners_are_as_documented(local_cluster):
    folder = Path(local_cluster["dir"])  # the default folder: mktemp, not a fixed /tmp path
    assert folder.name.startswith("tune_ae_cluster.") and len(folder.name) > len("tune_ae_cluster.")
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and oct((folder / "token").stat().st_mode & 0o777) == "0o600"
    outside = non_loopback(listeners({int(p) for p in session_pids(local_cluster["dir"])}))
    assert outside, "Ray now keeps every listener on loopback: update cluster/README.md, 'What listens'"
    assert all(UNCONFINABLE.match(name) for _, name in outside), outside
    assert not [a for a, name in outside if a.endswith(":8265")]  # no dashboard on the network


def test_embedded_ray_listeners_are_as_documented(ray_session):
    children = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True).stdout.split()
    family = {os.getpid(), *map(int, children)}
    for pid in children:
        family |= set(map(int, subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()))
    outside = non_loopback(listeners(family))
    assert outside and all(UNCONFINABLE.match(name) for _, name in outside), outside


def test_a_wrong_token_is_one_line(local_cluster, real_data_dir, tmp_path):
    """The cluster refuses a driver with another token: one line that says so, none of Ray's core log."""
    wrong = tmp_path / "wrong-token"
    wrong.write_text("0" * 64)
    refused = run_cli("--grid", "smoke", "--address", local_cluster["address"], "--data-dir", str(real_data_dir),
                      "--storage-path", str(tmp_path), "--name", "refused", timeout=120,
                      env={**local_cluster["env"], "RAY_AUTH_TOKEN_PATH": str(wrong)})
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "refused this driver's token" in lines[0], refused.stderr


def test_a_sweep_on_two_nodes_that_cannot_import_tune_ae_survives_losing_one(local_cluster, real_data_dir, tmp_path):
    """The code travels with the driver (the nodes lack tune_ae), a trial per node; then the
    worker node dies and its trial goes on on the head from its checkpoint. One sweep for both."""
    probe = ("import ray; ray.init(address='%s')\n"
             "@ray.remote\ndef imports():\n    import tune_ae\n"
             "try:\n    ray.get(imports.remote())\nexcept Exception as err:\n    print('refused:', type(err).__name__)\n"
             % local_cluster["address"])
    # From another folder: Ray puts the driver's working directory on its workers' path, and
    # from the project root that alone would let them import tune_ae.
    without = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **local_cluster["env"]}, cwd=tmp_path)
    assert "refused:" in without.stdout, without.stdout + without.stderr[-2000:]  # the nodes really lack it
    folder = tmp_path / "fault"
    driver = subprocess.Popen(
        [sys.executable, "-m", "tune_ae.run", "--grid", "smoke", "--hidden", "128", "256", "--subset", "6000",
         "--epochs", "12", "--batch-size", "100", "--checkpoint-every", "2", "--address", local_cluster["address"],
         "--data-dir", str(real_data_dir), "--storage-path", str(tmp_path), "--name", "fault", "--no-report"],
        env={**os.environ, **local_cluster["env"]}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=tmp_path,
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
        reports = results.json_lines(trial_dir / results.EPOCHS_LOG)  # as the driver logged them
        switch = [i for i in range(1, len(reports)) if reports[i]["node_id"] != reports[i - 1]["node_id"]]
        if switch:
            before, after = reports[switch[0] - 1], reports[switch[0]]
            moved.append((before["epoch"], after["epoch"]))
    assert len(moved) == 1 and epochs["node_id"].nunique() == 2  # a trial per node (1 CPU each), one moved
    last_on_lost_node, first_on_head = moved[0]
    # From its newest checkpoint (one every 2 epochs). That checkpoint may be an epoch ahead of the
    # driver's log: the node died before that epoch's result reached the driver; its row then
    # comes from the checkpoint's own copy (every epoch once, asserted above).
    assert 1 < first_on_head <= last_on_lost_node + 1 + 2


def test_stop_ends_its_own_processes_and_spares_a_bystander(local_cluster):
    """Last in the module: stops the shared cluster (its fixture then finds it stopped)."""
    folder = local_cluster["dir"]
    # A process that merely names the cluster's folder, as `tail -f` of its log would.
    bystander = subprocess.Popen(["bash", "-c", f'exec -a "tail -f {folder}/ray/session_latest/logs/raylet.out" sleep 120'])
    local_cluster["bystanders"].append(bystander.pid)
    try:
        assert len(session_pids(folder)) >= 3  # the head's daemons at least (the worker node was lost above)
        assert str(bystander.pid) in cluster_pids(folder)  # what the old `pgrep -f FOLDER` would have killed
        stop_cluster(local_cluster)
        assert bystander.poll() is None, "local.sh stop killed a process it did not start"
    finally:
        bystander.kill()
