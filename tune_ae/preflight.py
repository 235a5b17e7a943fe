"""Checks that need no Ray: the cluster's address (its form, and that something answers there)
and whether a trial's request fits a machine. A bad value is a ConfigError before Ray loads,
so it is answered in a fraction of a second instead of after Ray's start (~3 s, more under load).
"""

from __future__ import annotations

import os
import socket

from tune_ae.config import ConfigError


def check_address(address: str | None, given_as: str = "--address") -> None:
    """HOST:PORT or auto.

    Not ray:// (Ray Client): there the Tuner runs on the head node, so the progress lines,
    the epochs log and the experiment folder would be the head's, and a restored Tuner has no
    driver-side state to take the new settings (ray_internals.replace_run_config)."""
    if not address or address == "auto":
        return
    if address.lower().startswith("ray://"):
        raise ConfigError(f"{given_as} {address!r}: Ray Client (ray://) is not supported; give the cluster's "
                          "HOST:PORT (the GCS port, 6379 by default) from a machine of the cluster, or submit the "
                          "run with `ray job submit` (cluster/README.md)")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{given_as} {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")


def check_reachable(address: str) -> None:
    """A TCP connection to HOST:PORT, so that a wrong address fails at once instead of retrying for minutes."""
    if address == "auto":
        return  # ray.init finds the local cluster's address itself, or raises ConnectionError
    check_address(address)
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as err:
        raise ConfigError(f"no Ray cluster answers at {address} ({err.strerror or err}); "
                          "check the address, or drop --address (and RAY_ADDRESS) to run on this machine") from None


def check_fits(cpus: float, gpus: float, nodes: list[dict], remote: bool) -> str | None:
    """Refuse (ConfigError) a per-trial request that none of `nodes` ({"CPU": n, "GPU": n}) can
    meet: it would stay pending forever. On a remote cluster, which may scale up, the message is
    returned instead, for the caller to warn with."""
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return None
    biggest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    message = (f"no node can run a trial that asks for {cpus:g} CPU(s) and {gpus:g} GPU(s): "
               f"the largest has {biggest.get('CPU', 0):g} CPU(s) and {biggest.get('GPU', 0):g} GPU(s); "
               "lower --cpus-per-trial or --gpus-per-trial")
    if not remote:
        raise ConfigError(message)
    return message


def check_fits_this_machine(cpus: float | None, gpus: float | None) -> None:
    """Before an embedded Ray starts: a request over this machine's CPUs, or a GPU share where
    torch sees no GPU, can never run. Ray counts at most os.cpu_count() CPUs (fewer under a
    cgroup quota) and no GPU that CUDA does not show; the check once Ray is up (sweep.py) covers
    the rest. None (auto) always fits: `cpus` is at least 1, `gpus` 0 where there is no GPU."""
    machine = {"CPU": os.cpu_count() or 1, "GPU": 0}
    if gpus:
        import torch  # only for a GPU request: `import torch` costs seconds

        machine["GPU"] = torch.cuda.device_count()
    check_fits(cpus or 1.0, gpus or 0.0, [machine], remote=False)
