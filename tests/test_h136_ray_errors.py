"""``experiment.executor=ray`` when Ray's import fails (an ImportError, or another error), and
the log of many parts that raise alike in their Ray workers."""

from __future__ import annotations

import logging
import sys
from functools import partial

import pytest

from recoworld.apps.run.app import main as run_app
from run_support import TINY_RUN

TINY = [*TINY_RUN, "agent=random", "experiment.executor=ray"]


@pytest.mark.parametrize(("error", "said"), [
    ("ImportError('No module named grpc')", "ImportError: No module named grpc"),
    ("TypeError('Descriptors cannot be created directly.\\nIf this call came from a _pb2.py file, your generated "
     "code is out of date')",
     "TypeError: Descriptors cannot be created directly. If this call came from a _pb2.py file, your generated code "
     "is out of date"),
    ("AttributeError(\"module 'grpc' has no attribute 'aio'\")", "AttributeError: module 'grpc' has no attribute 'aio'")])
def test_a_ray_whose_import_raises_another_error_is_named_in_one_line(error, said, tmp_path, capsys, monkeypatch):
    broken = tmp_path / "site" / "ray"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(f"raise {error}\n")
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # put back when the test ends
    monkeypatch.syspath_prepend(str(broken.parent))
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        run_app([*TINY, f"hydra.run.dir={run}"])
    assert stop.value.code == 1
    assert not (run / "status.json").exists()  # refused before any of the run is written
    assert capsys.readouterr().err.strip() == (
        f"recoworld run: error: experiment.executor=ray needs Ray, which is installed but cannot be imported "
        f"({said}); repair it: pip install --force-reinstall 'recoworld[ray]' (or run with "
        "experiment.executor=local)")


def hooks_raising_with_the_seed(cfg, folder, part) -> list:
    """Hooks that are never built: each part raises from this same line, with its own seed."""
    raise ValueError(f"seed {part.seed}")


def test_parts_raising_alike_with_their_own_messages_log_one_traceback_and_one_line_each(
        local_ray, hooks_by_value, tmp_path, caplog):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from recoworld.apps.run import executor
    from recoworld.apps.run.rundir import Part, RunDirectory

    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=TINY)
    parts = [Part("random", seed) for seed in (0, 1, 2)]
    directory = RunDirectory.start(tmp_path, {"config": 1}, parts, resume=False)
    with caplog.at_level(logging.ERROR, logger=executor.__name__), pytest.raises(executor.RolloutsFailed):
        executor.ray_parts(cfg, {"random": cfg.agent}, parts, instantiate(cfg.world), directory,
                           hooks=partial(hooks_raising_with_the_seed, cfg), on_done=lambda part: None)
    said = [record.getMessage() for record in caplog.records if record.name == executor.__name__]
    tracebacks = [message for message in said if "Traceback (most recent call last):" in message]
    assert len(said) == 3 and len(tracebacks) == 1, said
    first = tracebacks[0].split()[1]  # seed=N of the part whose traceback is logged
    assert tracebacks[0].startswith(f"agent=random {first} raised in its Ray worker (pid=")
    assert ", in hooks_raising_with_the_seed\n" in tracebacks[0]
    assert tracebacks[0].endswith(f"ValueError: seed {first.removeprefix('seed=')}")
    assert sorted(message for message in said if message not in tracebacks) == [
        f"agent=random seed={seed} raised in its Ray worker as agent=random {first} did (traceback above): "
        f"ValueError: seed {seed}" for seed in (0, 1, 2) if f"seed={seed}" != first]
