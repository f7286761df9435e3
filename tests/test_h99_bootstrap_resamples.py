"""A percentile interval from too few bootstrap resamples is refused, not returned: with
``B`` resamples even the range of the replicates covers only ``(B - 1) / (B + 1)``."""

import numpy as np
import pytest

from recoworld.apps.cli import main as cli
from recoworld.apps.ope.config import StudyConfig
from recoworld.ope import IPS, BanditFeedback, BaseEstimator
from recoworld.ope.base import min_resamples
from recoworld.ope.evaluation import evaluate_bandit

TWENTY = ("n_bootstrap=20 resamples cannot give a 95% interval: the widest percentile interval of 20 resamples "
          "covers about 90.4%; use n_bootstrap >= 39, and 1000 or more for stable ends")


def log(n=200, seed=0):
    rng = np.random.default_rng(seed)
    feedback = BanditFeedback(rng.integers(0, 2, n), rng.random(n), np.full(n, 0.5))
    return feedback, np.full((n, 2), 0.5)


def test_twenty_resamples_are_refused_for_a_95_percent_interval_with_the_fix():
    with pytest.raises(ValueError) as refused:
        IPS().estimate_interval(*log(), n_bootstrap=20, alpha=0.05)
    assert str(refused.value) == TWENTY


@pytest.mark.parametrize("alpha, least", [(0.05, 39), (0.1, 19), (0.2, 9), (0.01, 199), (0.3, 6)])
def test_the_least_count_is_the_first_whose_range_covers_the_level(alpha, least):
    assert min_resamples(alpha) == least
    assert (least - 1) / (least + 1) >= 1 - alpha > (least - 2) / least
    with pytest.raises(ValueError, match=rf"^n_bootstrap={least - 1} resamples cannot give .* >= {least},"):
        IPS().estimate_interval(*log(), n_bootstrap=least - 1, alpha=alpha)
    interval = IPS().estimate_interval(*log(), n_bootstrap=least, alpha=alpha)
    assert interval.lower <= interval.estimate <= interval.upper and interval.n_bootstrap == least


def test_the_count_is_refused_before_the_terms_are_computed():
    # FQE fits its Q-function in _round_terms: a count refused after it would waste the fit
    class Fitted(BaseEstimator):
        def _round_terms(self, *args):
            pytest.fail("the terms were computed before the count was checked")

    with pytest.raises(ValueError, match="^n_bootstrap=38 resamples cannot give a 95% interval"):
        Fitted().estimate_interval(n_bootstrap=38)


def test_evaluate_bandit_refuses_the_count_before_any_estimate():
    with pytest.raises(ValueError) as refused:
        evaluate_bandit(problem=None, n_bootstrap=20, alpha=0.05)  # the problem is never read
    assert str(refused.value) == TWENTY


@pytest.mark.parametrize("flags, message", [
    (["--bootstrap", "20"], "--bootstrap=20 resamples cannot give a 95% interval: the widest percentile interval "
                            "of 20 resamples covers about 90.4%; use --bootstrap >= 39, and 1000 or more for stable "
                            "ends"),
    # the default count is too few for a 99.9% interval
    (["--alpha", "0.001"], "--bootstrap=1000 resamples cannot give a 99.9% interval: the widest percentile interval "
                           "of 1000 resamples covers about 99.8%; use --bootstrap >= 1999, and 1000 or more for "
                           "stable ends"),
])
def test_ope_evaluate_refuses_the_count_before_it_reads_the_log(tmp_path, capsys, monkeypatch, flags, message):
    from recoworld.apps.ope import sources

    for name in ("guess_format", "read_table", "read_obd"):
        monkeypatch.setattr(sources, name, lambda *a, **k: pytest.fail("the log was read before the flags were checked"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "tests.x:Policy", *flags,
             "--out", str(out)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"recoworld ope evaluate: error: {message}"
    assert not out.exists()


def test_the_estimator_study_refuses_the_count_before_it_draws_a_log(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^StudyConfig\.n_bootstrap=20 resamples cannot give a 95% interval"):
        StudyConfig(n_bootstrap=20)
    with pytest.raises(SystemExit) as stopped:
        cli(["ope", "--out", str(tmp_path / "out"), "--bootstrap", "38"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "recoworld ope: error: --bootstrap 38 resamples cannot give a 95% interval")
    assert list(tmp_path.iterdir()) == []


def test_the_open_bandit_study_refuses_the_count_before_it_reads_the_data(tmp_path):
    from recoworld.data.obd import obd_study

    # an empty folder: a study that read it first would fail on a missing file instead
    with pytest.raises(ValueError) as refused:
        obd_study(path=tmp_path, n_bootstrap=20)
    assert str(refused.value) == TWENTY
