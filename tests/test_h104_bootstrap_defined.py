"""A bootstrap interval says how many replicates it rests on, and is refused when too few
resamples leave a self-normalised estimator defined: a resample that draws no round with
weight has no estimate, and the count :func:`~recoworld.ope.base.min_resamples` asks of
``n_bootstrap`` holds for what is left of it. Too few resamples, 0 included, are refused in
one sentence everywhere."""

import dataclasses
import json

import numpy as np
import pytest

from recoworld.apps.cli import main as cli
from recoworld.apps.ope.config import StudyConfig
from recoworld.apps.ope.intervals import row_interval
from recoworld.ope import IPS, SNIPS, BanditFeedback, PolicyValueInterval, SelfNormalizedSlateIndependentIPS, SlateFeedback

WHY = ("a resample is undefined when its normalising weights sum to 0, and the log has very few rounds with "
       "non-zero weight (the evaluation policy rarely makes the logged choices); log more rounds, or with a "
       "logging policy that overlaps more with the evaluation policy, or use an estimator defined on every "
       "resample, such as IPS or DM")


def few_agreeing_rounds(n=40, agreeing=(1.0,)):
    """A log of ``n`` rounds whose logger (uniform over 2 actions) took the target's action
    (always 1) only in the first ``len(agreeing)`` rounds, with those rewards."""
    action = np.zeros(n, dtype=int)
    action[:len(agreeing)] = 1
    reward = np.zeros(n)
    reward[:len(agreeing)] = agreeing
    target = np.zeros((n, 2))
    target[:, 1] = 1.0
    return BanditFeedback(action, reward, np.full(n, 0.5)), target


def one_weighted_round_per_position(n, k):
    """A slate log where, at each position ``j``, only slate ``j`` shows the item the
    target puts there: a resample is defined only if it draws all ``k`` of those slates."""
    reward = (np.arange(n * k).reshape(n, k) % 3 == 0).astype(float)
    target = np.zeros((n, k))
    target[np.arange(k), np.arange(k)] = 1.0
    return SlateFeedback(reward, pscore_item_position=np.full((n, k), 0.5)), {"evaluation_pscore_item_position": target}


def test_an_interval_resting_on_fewer_defined_resamples_than_its_level_needs_is_refused():
    # most resamples miss one of the 8 weighted slates: 13 of 1000 are left, and 39 are needed
    feedback, target = one_weighted_round_per_position(30, 8)
    with pytest.raises(ValueError, match=r"^SelfNormalizedSlateIndependentIPS is undefined on 987 of the 1000 "
                                         r"bootstrap resamples and defined on 13, fewer than the 39 a 95% interval "
                                         r"needs: a resample is undefined .* such as IPS or DM$") as refused:
        SelfNormalizedSlateIndependentIPS().estimate_interval(feedback, **target, n_bootstrap=1000)
    assert str(refused.value).endswith(WHY)


def test_snips_with_one_agreeing_round_is_refused_at_a_count_its_undefined_resamples_leave_short():
    # a resample misses the one weighted round about once in three: 35 of 50 are left
    feedback, target = few_agreeing_rounds()
    with pytest.raises(ValueError) as refused:
        SNIPS().estimate_interval(feedback, target, n_bootstrap=50)
    assert str(refused.value) == ("SNIPS is undefined on 15 of the 50 bootstrap resamples and defined on 35, fewer "
                                  f"than the 39 a 95% interval needs: {WHY}")
    # the level sets the count: 19 suffice for a 90% interval
    interval = SNIPS().estimate_interval(feedback, target, n_bootstrap=50, alpha=0.1)
    assert (interval.n_bootstrap, interval.n_replicates) == (50, 35)


def test_defined_on_no_resample_is_the_same_sentence_with_zero():
    feedback, target = one_weighted_round_per_position(40, 24)
    assert np.isfinite(SelfNormalizedSlateIndependentIPS().estimate_policy_value(feedback, **target))
    with pytest.raises(ValueError, match=r"^SelfNormalizedSlateIndependentIPS is undefined on 1000 of the 1000 "
                                         r"bootstrap resamples and defined on 0, fewer than the 39 a 95% interval "
                                         r"needs: a resample is undefined when"):
        SelfNormalizedSlateIndependentIPS().estimate_interval(feedback, **target)


def test_an_estimator_undefined_on_the_whole_log_says_so_before_any_resample():
    feedback, target = few_agreeing_rounds(agreeing=())
    with pytest.raises(ValueError, match=r"^SNIPS is undefined on this data: its normalising weights sum to 0 "
                                         r"\(the evaluation policy gives probability 0 to every logged choice\); "
                                         r"use an estimator without self-normalisation or log more overlapping data$"):
        SNIPS().estimate_interval(feedback, target)


def test_the_interval_counts_the_replicates_it_rests_on():
    feedback, target = few_agreeing_rounds(agreeing=(1.0, 0.0, 1.0))
    interval = SNIPS().estimate_interval(feedback, target, n_bootstrap=1000, seed=3)
    assert (interval.n_bootstrap, interval.n_replicates) == (1000, 958)
    # the same resamples drawn here: those that draw one of the 3 weighted rounds, and SNIPS
    # on them (equal weights: the mean reward of the weighted rounds drawn)
    drawn = np.random.default_rng(3).integers(0, 40, size=(1000, 40))
    counts = np.stack([(drawn == i).sum(axis=1) for i in range(3)], axis=1)
    defined = counts.sum(axis=1) > 0
    assert defined.sum() == 958
    replicates = counts[defined] @ np.array([1.0, 0.0, 1.0]) / counts[defined].sum(axis=1)
    assert (interval.lower, interval.upper) == pytest.approx(tuple(np.quantile(replicates, [0.025, 0.975])), rel=1e-12)
    assert interval.lower < interval.estimate < interval.upper
    # IPS is defined on every resample: its interval rests on all of them
    assert IPS().estimate_interval(feedback, target, n_bootstrap=1000, seed=3).n_replicates == 1000


def test_the_count_survives_a_round_trip_and_an_interval_of_five_fields_counts_every_resample():
    feedback, target = few_agreeing_rounds(agreeing=(1.0, 0.0, 1.0))
    interval = SNIPS().estimate_interval(feedback, target, n_bootstrap=100)
    saved = json.loads(json.dumps(dataclasses.asdict(interval)))
    assert saved["n_replicates"] == interval.n_replicates < 100
    assert PolicyValueInterval(**saved) == interval
    older = {key: saved[key] for key in ("estimate", "lower", "upper", "alpha", "n_bootstrap")}
    assert PolicyValueInterval(**older).n_replicates == 100
    assert PolicyValueInterval(0.5, 0.4, 0.6, 0.05, 39).n_replicates == 39


def test_the_study_records_an_interval_on_too_few_defined_resamples_as_an_estimate_without_bounds():
    # the whole log defines the estimate: only the interval is missing (h108)
    feedback, target = one_weighted_round_per_position(30, 8)
    estimate, lower, upper, replicates = row_interval(SelfNormalizedSlateIndependentIPS(), feedback, **target,
                                                      n_bootstrap=1000)
    assert estimate == SelfNormalizedSlateIndependentIPS().estimate_policy_value(feedback, **target)
    assert np.isnan([lower, upper]).all() and replicates == 13


@pytest.mark.parametrize("count, why", [
    (0, "without a resample there is no replicate to take an interval from"),
    (-1, "without a resample there is no replicate to take an interval from"),
])
def test_zero_and_negative_counts_are_refused_in_the_same_sentence_as_too_few(count, why):
    feedback, target = few_agreeing_rounds()
    with pytest.raises(ValueError) as refused:
        IPS().estimate_interval(feedback, target, n_bootstrap=count)
    assert str(refused.value) == (f"n_bootstrap={count} resamples cannot give a 95% interval: {why}; use "
                                  "n_bootstrap >= 39, and 1000 or more for stable ends")


@pytest.mark.parametrize("count", ["0", "-3"])
def test_ope_evaluate_refuses_bootstrap_0_in_the_sentence_of_every_count_too_few(tmp_path, capsys, monkeypatch, count):
    from recoworld.apps.ope import sources

    for name in ("guess_format", "read_table", "read_obd"):
        monkeypatch.setattr(sources, name, lambda *a, **k: pytest.fail("the log was read before the flags were checked"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        cli(["ope", "evaluate", "--log", str(tmp_path / "log.csv"), "--policy", "tests.x:Policy", "--bootstrap", count,
             "--out", str(out)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"recoworld ope evaluate: error: --bootstrap={count} resamples cannot give a 95% interval: without a "
        "resample there is no replicate to take an interval from; use --bootstrap >= 39, and 1000 or more for "
        "stable ends")
    assert not out.exists()


def test_the_estimator_study_refuses_bootstrap_0_in_the_same_sentence(tmp_path, capsys):
    message = ("StudyConfig.n_bootstrap=0 resamples cannot give a 95% interval: without a resample there is no "
               "replicate to take an interval from; use StudyConfig.n_bootstrap >= 39, and 1000 or more for stable ends")
    with pytest.raises(ValueError) as refused:
        StudyConfig(n_bootstrap=0)
    assert str(refused.value) == message
    with pytest.raises(SystemExit) as stopped:
        cli(["ope", "--out", str(tmp_path / "out"), "--bootstrap", "0"])
    assert stopped.value.code == 2
    # the command line names its flag where the config names its field
    flags = message.replace("StudyConfig.n_bootstrap=0", "--bootstrap 0").replace("StudyConfig.n_bootstrap",
                                                                                 "--bootstrap")
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"recoworld ope: error: {flags}"
    assert list(tmp_path.iterdir()) == []
