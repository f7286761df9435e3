"""``experiment.executor=ray`` refused before the run directory is touched when Ray cannot
start: not installed, an address Ray does not take, nothing answering at it, or a cluster it
cannot join. No Ray is started here."""

from __future__ import annotations

import socket
import sys

import pytest
from omegaconf import OmegaConf

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import ExperimentConfigError
from recoworld.apps.run.executor import check_executor, ensure_ray
from run_support import TINY_RUN

TINY = [*TINY_RUN, "agent=random", "experiment.executor=ray"]


def _refused(tmp_path, capsys, *overrides) -> str:
    with pytest.raises(SystemExit) as stop:
        run_app([*TINY, *overrides, f"hydra.run.dir={tmp_path}"])
    assert stop.value.code == 1
    assert not (tmp_path / "status.json").exists()  # nothing of a run written
    return capsys.readouterr().err


def test_without_ray_the_run_is_refused_before_it_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert _refused(tmp_path, capsys).strip() == ("recoworld run: error: experiment.executor=ray needs Ray: pip install "
                                                  "'recoworld[ray]' (or run with experiment.executor=local)")
    with pytest.raises(ExperimentConfigError, match=r"^experiment.executor=ray needs Ray: pip install"):
        ensure_ray(None)


@pytest.fixture
def ray_not_started():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # the suite's (tests/conftest.py: local_ray), kept for the session
        ray.shutdown()  # a Ray of this process is used as it is: there would be no address to check
    return ray


def _closed_port() -> int:
    with socket.socket() as listener:  # a port just freed: nothing answers there
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def test_an_address_with_nothing_answering_is_refused_at_once(tmp_path, capsys, ray_not_started):
    port = _closed_port()
    err = _refused(tmp_path, capsys, f"experiment.ray_address=127.0.0.1:{port}")
    assert err.startswith(f"recoworld run: error: experiment.ray_address='127.0.0.1:{port}': nothing answers at "
                          f"127.0.0.1:{port} (")
    assert "start Ray's head there (ray start --head), or give auto (the cluster this node belongs to), HOST:6379" in err
    with pytest.raises(ExperimentConfigError, match=rf"^experiment.ray_address='ray://127.0.0.1:{port}': nothing "):
        check_executor(OmegaConf.create({"executor": "ray", "ray_address": f"ray://127.0.0.1:{port}"}))


@pytest.mark.parametrize("address", ["nonsense", "head:port", "http://head:8265", "ray://head"])
def test_an_address_ray_does_not_take_is_named_with_the_forms_it_takes(address, ray_not_started):
    with pytest.raises(ExperimentConfigError) as refusal:
        check_executor(OmegaConf.create({"executor": "ray", "ray_address": address}))
    assert str(refusal.value) == (
        f"experiment.ray_address={address!r} is not an address Ray takes; give auto (the cluster this node belongs "
        "to), HOST:6379 (the head's address, from a node of the cluster) or ray://HOST:10001 (Ray Client, from outside "
        "it), or leave experiment.ray_address null to start Ray on this machine")


def test_a_cluster_ray_cannot_join_is_named_with_the_fix(ray_not_started, monkeypatch):
    def no_cluster(**kwargs):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                              "setting `--address` flag or `RAY_ADDRESS` environment variable.")

    monkeypatch.setattr(ray_not_started, "init", no_cluster)
    with pytest.raises(ExperimentConfigError, match=r"^experiment.ray_address='auto': Ray could not join it "
                                                     r"\(ConnectionError: Could not find any running Ray instance\. "
                                                     r".*\); start the cluster \(ray start --head on its head node\)"):
        ensure_ray("auto")


def test_auto_with_no_cluster_is_refused_before_the_run_starts(tmp_path, capsys, ray_not_started, monkeypatch):
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])  # no cluster running on this machine
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    err = _refused(tmp_path, capsys, "experiment.ray_address=auto")
    assert err.strip() == (
        "recoworld run: error: experiment.ray_address='auto': no Ray cluster runs on this machine and RAY_ADDRESS is "
        "unset; start the cluster (ray start --head on its head node), or give auto (the cluster this node belongs "
        "to), HOST:6379 (the head's address, from a node of the cluster) or ray://HOST:10001 (Ray Client, from "
        "outside it), or leave experiment.ray_address null to start Ray on this machine")


def test_auto_is_checked_at_the_address_ray_would_join(ray_not_started, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")  # what auto resolves to
    with pytest.raises(ExperimentConfigError, match=rf"^experiment.ray_address='auto' \(found 127.0.0.1:{port}\): "
                                                     rf"nothing answers at 127.0.0.1:{port} "):
        check_executor(OmegaConf.create({"executor": "ray", "ray_address": "auto"}))
