"""The review of 74ee6e5 (h159): the trust verdict measures the value from the lowest logged
reward, so one reward of a log of rare clicks that is not 0/1 no longer makes the scale jump
from the value (0.03) to the range (1); a value at that lowest reward is not trusted, and says
why; a module beside a policy file hidden by an installed module of its name is named."""

import numpy as np
import pytest

from recoworld.apps.ope.policies import load_object
from recoworld.ope import BanditFeedback, per_action_features
from recoworld.ope.evaluation import BanditProblem
from recoworld.ope.selection import Selection, simulate_then_select, verdict
from tests.test_h142_ope_careless import evaluate, table
from tests.test_h152_ope_review import own_imports  # noqa: F401  (a fixture)


def clicks_problem(reward: np.ndarray) -> BanditProblem:
    rng = np.random.default_rng(0)
    n, x = len(reward), rng.standard_normal(len(reward))
    return BanditProblem(BanditFeedback(rng.integers(0, 4, n), reward, np.full(n, 0.25)), np.full((n, 4, 1), 0.25),
                         lambda rows: per_action_features(x[rows, None], 4, 1))


def test_one_reward_that_is_not_0_1_leaves_the_scale_of_a_rare_click_log_where_it_was():
    # value 0.03 and RMSE 0.0086 were 28% of the value: untrusted; with one reward of 0.5 in
    # the log, the scale became the range [0, 1] and the verdict read "1% of the range": trusted
    assert verdict(Selection({}, {"DM": 0.0086}, "DM", 0.0305, 3, "x", r_min=0.0), ess=400.0) == (False, (
        "no estimate is trustworthy: even the best estimator, DM, erred by 28% of the value (RMSE) on simulated logs "
        "of this shape (threshold 25%)"))
    clicks = (np.random.default_rng(1).random(400) < 0.03).astype(float)
    for reward in (clicks, np.where(np.arange(400) == 0, 0.5, clicks)):
        selection = simulate_then_select(clicks_problem(reward), n_sims=3)
        share = selection.rmse[selection.recommended] / selection.value
        assert selection.r_min == 0.0
        assert f"{share:.0%} of the value" in verdict(selection, ess=400.0)[1]


def test_ratings_are_judged_against_the_value_above_their_lowest_reward():
    # 2.9 on ratings 1..5: an RMSE of 0.45 is 24% of 1.9, trusted; 0.5 is 26%, not (of the range
    # [1, 5], as before, 11% and 12%: both trusted)
    assert verdict(Selection({}, {"DM": 0.45}, "DM", 2.9, 3, "x", r_min=1.0), ess=400.0) == (True, (
        "DM (reward-model based) is recommended: the least RMSE on 3 simulated logs of this shape (24% of the value "
        "above 1, the floor of the logged rewards (their 1% quantile))"))
    assert verdict(Selection({}, {"DM": 0.5}, "DM", 2.9, 3, "x", r_min=1.0), ess=400.0) == (False, (
        "no estimate is trustworthy: even the best estimator, DM, erred by 26% of the value above 1, the floor of the "
        "logged rewards (their 1% quantile) (RMSE) on simulated logs of this shape (threshold 25%)"))


@pytest.mark.parametrize("value, r_min, rmse", [(0.0, 0.0, 0.0), (4.4e-15, 0.0, 0.0), (3.0, 3.0, 0.0),
                                                (101.0 + 1e-13, 101.0, 0.25)])
def test_a_value_at_the_lowest_logged_reward_is_not_trusted_and_says_why(value, r_min, rmse):
    # was a share of max(value, 1e-12): a log without clicks read "0% of the value" and was
    # trusted; an RMSE above 0 read billions of per cent
    assert verdict(Selection({}, {"DM": rmse}, "DM", value, 3, "x", r_min=r_min), ess=400.0) == (False, (
        f"no estimate is trustworthy: the simulated value is at the floor of the logged rewards, {r_min:g}, which "
        f"leaves nothing above it to judge the simulated RMSE of the best estimator, DM ({rmse:.2g}), against; log "
        f"until some of the target policy's choices are rewarded above {r_min:g}"))


def test_a_log_without_clicks_gets_no_trusted_estimate(tmp_path, capsys):
    log = table()
    log["reward"] = 0.0
    report = evaluate(tmp_path, log, capsys=capsys)
    assert report["verdict"]["trustworthy"] is False  # was "DM ... is recommended: ... (0% of the value)"
    assert report["verdict"]["sentence"].startswith(
        "no estimate is trustworthy: the simulated value is at the floor of the logged rewards, 0, which leaves "
        "nothing above it")
    assert report["selection"]["r_min"] == 0.0


@pytest.mark.parametrize("imports", ["from yaml import Helper", "import yaml.h163_helpers"])
def test_a_module_beside_the_policy_hidden_by_an_installed_one_is_named(tmp_path, monkeypatch, own_imports, imports):
    # `python team/h163_mine.py` imports team/yaml.py; --policy imported the installed yaml and
    # told the user to "fix the file's imports: modules beside it import by their name", as they had
    import yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "team" / "yaml").mkdir(parents=True)
    (tmp_path / "team" / "yaml.py").write_text("class Helper:\n    pass\n")
    (tmp_path / "team" / "h163_mine.py").write_text(f"{imports}\nclass Pol:\n    pass\n")
    with pytest.raises(ValueError) as refused:
        load_object("team/h163_mine.py:Pol", {})
    assert str(refused.value).endswith(
        f"; team/yaml.py beside it is hidden by the installed module yaml ({yaml.__file__}): rename it")


def test_a_failed_import_with_nothing_beside_the_policy_keeps_its_fix(tmp_path, monkeypatch, own_imports):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "h163_lone.py").write_text("from yaml import Helper\n")
    with pytest.raises(ValueError, match=r"\); fix the file's imports: modules beside it import by their name; a "
                                         r"package's module is given as package.module:Class$"):
        load_object("team/h163_lone.py:Pol", {})
