"""The checks that need no Ray: address, reachability, and whether a request fits a machine."""

import os
import socket

import pytest

from tune_ae import preflight
from tune_ae.config import ConfigError


@pytest.mark.parametrize("address", [None, "", "auto", "10.0.0.5:6379", "head:1"])
def test_good_addresses_pass(address):
    preflight.check_address(address)


@pytest.mark.parametrize("address, words", [
    ("10.0.0.5", "is not HOST:PORT"), (":6379", "is not HOST:PORT"), ("h:0", "is not HOST:PORT"),
    ("h:70000", "is not HOST:PORT"), ("Ray://h:10001", "Ray Client (ray://) is not supported"),
])
def test_bad_addresses_name_the_flag(address, words):
    with pytest.raises(ConfigError, match=r"^RAY_ADDRESS .*" + words.replace("(", r"\(").replace(")", r"\)")):
        preflight.check_address(address, "RAY_ADDRESS")


def test_an_address_where_nothing_listens_is_refused_and_one_that_listens_passes():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
            preflight.check_reachable(f"127.0.0.1:{port}")  # bound, not listening: refused
        listener.listen()
        preflight.check_reachable(f"127.0.0.1:{port}")


def test_a_request_no_node_meets_is_refused_locally_and_warned_about_remotely():
    nodes = [{"CPU": 4, "GPU": 0}, {"CPU": 2, "GPU": 1}]
    assert preflight.check_fits(2, 1, nodes, remote=False) is None
    assert preflight.check_fits(4, 0, nodes, remote=False) is None
    with pytest.raises(ConfigError, match=r"asks for 4 CPU\(s\) and 1 GPU\(s\): the largest has 2 CPU\(s\) and 1 GPU"):
        preflight.check_fits(4, 1, nodes, remote=False)
    assert "asks for 4 CPU(s) and 1 GPU(s)" in preflight.check_fits(4, 1, nodes, remote=True)
    assert "the largest has 0 CPU(s)" in preflight.check_fits(1, 0, [], remote=True)


def test_this_machine_bounds_an_embedded_rays_trials():
    cpus = os.cpu_count()
    preflight.check_fits_this_machine(cpus, None)  # auto GPUs: 0 where there are none
    preflight.check_fits_this_machine(0.5, 0)
    with pytest.raises(ConfigError, match=fr"asks for {cpus + 1} CPU\(s\) and 0 GPU\(s\): the largest has {cpus} CPU\(s\) and 0 GPU"):
        preflight.check_fits_this_machine(cpus + 1, None)
    import torch

    if torch.cuda.device_count() == 0:
        with pytest.raises(ConfigError, match=r"and 0.25 GPU\(s\): the largest has .* and 0 GPU"):
            preflight.check_fits_this_machine(1, 0.25)
