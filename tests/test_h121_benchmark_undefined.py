"""The OPE benchmarks count an estimate or an interval the log leaves undefined
(``UndefinedEstimate``, ``UndefinedInterval``) and go on, instead of crashing on it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from recoworld import ope

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}_h121", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(n: int, weighted_rounds: int):
    """A log of action 0 at probability 1/2 whose target gives action 0 to the first
    ``weighted_rounds`` rounds only: SNIPS is undefined on the log without any, and on the
    resamples that miss them."""
    reward = np.random.default_rng(0).integers(0, 2, n).astype(float)
    feedback = ope.BanditFeedback(np.zeros(n, dtype=np.int64), reward, np.full(n, 0.5))
    target = np.zeros((n, 2))
    target[:, 1] = 1.0
    target[:weighted_rounds] = [1.0, 0.0]
    return feedback, target


class _Sparse:
    """SNIPS on logs (of the coverage script) with one weighted round on even logs, none on odd ones."""

    truth = 0.5
    estimators = {"SNIPS": ope.SNIPS()}

    def sample(self, n: int, seed: int):
        return _log(n, 1 if seed % 2 == 0 else 0)


def test_the_coverage_script_counts_the_logs_without_an_interval(capsys):
    coverage = _script("ope_interval_coverage")
    # 50 resamples of 40 rounds: about 32 draw the one weighted round, fewer than the 39 of a 95% interval.
    coverage.coverage(_Sparse(), "sparse", n_rounds=40, n_logs=4, n_bootstrap=50, alpha=0.05)
    out = capsys.readouterr().out
    for method in ("percentile", "BCa", "studentized", "normal"):
        assert f"SNIPS                  {method:12s} no interval on any log  undefined on 4 of 4 logs " \
               "(interval 2, estimate 2)" in out, method


def test_the_timing_script_prints_an_undefined_estimate_and_counts_it(monkeypatch, capsys):
    timing = _script("ope")
    seconds, _, refused = timing.measure(ope.SNIPS(), _log(40, 1), {"n_bootstrap": 50, "seed": 0}, 1)
    assert isinstance(refused, ope.UndefinedInterval) and seconds >= 0
    assert timing.shown(refused) == (f"{refused.estimate:10.4f} (interval undefined: defined on "
                                     f"{refused.n_replicates} of 50)")
    undefined, defined = _log(40, 0), _log(40, 40)
    monkeypatch.setattr(timing, "cases", lambda log, fqe_n: iter([
        ("bandit", ope.SNIPS(), undefined, {}), ("bandit", ope.IPS(), defined, {})]))
    monkeypatch.setattr(sys, "argv", ["ope.py", "--n", "10", "--fqe-n", "10", "--repeats", "1"])
    timing.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("bandit         SNIPS()") and lines[2].endswith(" undefined")
    assert lines[-1] == "undefined on this log: 1 of 2 (SNIPS())"


@pytest.mark.parametrize("n", [1, 3])
def test_the_coverage_script_runs_on_logs_too_small_for_some_methods(n, capsys):
    coverage = _script("ope_interval_coverage")
    # One round: every resample repeats it, so the bootstrap-t has no pivot and BCa no jackknife.
    coverage.coverage(coverage.BanditProblem("light"), "bandit", n_rounds=n, n_logs=3, n_bootstrap=50, alpha=0.1)
    out = capsys.readouterr().out
    assert "IPS                    percentile   coverage" in out
    if n == 1:
        assert "IPS                    studentized  no interval on any log  undefined on 3 of 3 logs (method 3)" in out

