"""The review of the OPE careless-use fixes (2b79533): a policy file imports the modules beside
it and never takes an importable module's name; the verdict on ratings does not depend on
where their scale starts; a refitted interval survives a few undefined refits; an SNDR the
log leaves undefined counts no refits; an --out below a link to nothing, an undecodable CSV
and an empty position column are refused with the fix."""

import importlib
import math
import os
import pickle
import re
import sys

import numpy as np
import pytest

from recoworld.apps.cli import main as cli
from recoworld.apps.ope.policies import load_object
from recoworld.logs import check_new_folder
from recoworld.ope import BanditFeedback, per_action_features
from recoworld.ope.evaluation import BanditProblem, evaluate_bandit
from recoworld.ope.refit import refit_interval
from recoworld.ope.selection import Selection, simulate_then_select, verdict
from tests.test_h142_ope_careless import FAST, POLICY, FirstAction, evaluate, table


@pytest.fixture
def own_imports(monkeypatch, tmp_path):
    """``sys.path`` and ``sys.modules`` as they were, whatever a test's policy files (under
    ``tmp_path``) add."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != ""])
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if str(tmp_path) in str(getattr(sys.modules[name], "__file__", None) or ""):
            del sys.modules[name]


def test_a_policy_file_imports_the_modules_beside_it(tmp_path, monkeypatch, capsys, own_imports):
    # `python team/h152_policy.py` imports h152_helpers from team/; --policy failed with
    # "No module named 'h152_helpers'" and told to "give module:Attribute of an importable module"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "h152_helpers.py").write_text(POLICY)
    (tmp_path / "team" / "h152_policy.py").write_text("from h152_helpers import Uniform\n")
    (tmp_path / "team" / "h152_relative.py").write_text("from .h152_helpers import Uniform\n")
    table().to_csv(tmp_path / "log.csv", index=False)
    assert cli(["ope", "evaluate", "--log", "log.csv", "--policy", "team/h152_policy.py:Uniform", "--out", "out0",
                *FAST]) == 0
    assert evaluate(tmp_path, tmp_path / "log.csv", policy="team/h152_relative.py:Uniform", capsys=capsys) == (
        "recoworld ope evaluate: error: --policy 'team/h152_relative.py:Uniform': cannot import 'Uniform' from "
        "'team/h152_relative.py' (ImportError: attempted relative import with no known parent package "
        f"({tmp_path / 'team' / 'h152_relative.py'}, line 1)); fix the file's imports: modules beside it import by "
        "their name; a package's module is given as package.module:Class")


def test_a_policy_file_never_takes_an_importable_modules_name(tmp_path, monkeypatch, own_imports):
    # a policy file named like a module imported later (scipy.py) was registered under its name,
    # and the evaluation's own `import scipy.stats` failed
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "h152_shadowed.py").write_text("KIND = 'installed'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "h152_shadowed.py").write_text("class Pol:\n    KIND = 'policy'\n")
    policy = load_object(f"{tmp_path / 'team' / 'h152_shadowed.py'}:Pol", {})
    assert policy.KIND == "policy" and type(policy).__module__ != "h152_shadowed"
    assert importlib.import_module("h152_shadowed").KIND == "installed"


def test_a_policy_file_loaded_again_keeps_every_load_picklable(tmp_path, own_imports):
    # the 2nd and 3rd loads shared one name, and the 2nd load's object no longer pickled
    path = tmp_path / "h152_twice.py"
    loaded = []
    for version in range(3):
        path.write_text(f"class Pol:\n    version = {version}\n")
        loaded.append(load_object(f"{path}:Pol", {}))
    assert type(loaded[0]).__module__ == "h152_twice"  # no module of that name: the file's own, as import gives it
    assert [pickle.loads(pickle.dumps(policy)).version for policy in loaded] == [0, 1, 2]


def ratings_problem(shift: float = 0.0) -> BanditProblem:
    rng = np.random.default_rng(0)
    n, x = 400, rng.standard_normal(400)
    action = rng.integers(0, 4, n)
    reward = np.clip(np.round(3 + x * (action - 1.5) * 0.5 + rng.normal(0, 1, n)), 1, 5) + shift
    return BanditProblem(BanditFeedback(action, reward, np.full(n, 0.25)), np.full((n, 4, 1), 0.25),
                         lambda rows: per_action_features(x[rows, None], 4, 1))


def test_the_verdict_on_ratings_does_not_depend_on_where_their_scale_starts():
    # RMSEs are the same for ratings 1..5, 101..105, -2.5..1.5 and -2..2; a share of the value read
    # 1%, 0% and 5% for the first three, and refused the fourth, whose value is near 0. Which
    # estimator wins is not the point: DR and SNDR tie here to float rounding, and either may
    # win a shift (the recommendation is masked with the scale).
    selections = {shift: simulate_then_select(ratings_problem(shift), n_sims=3) for shift in (0.0, 100.0, -3.5, -3.0)}
    verdicts = {shift: verdict(selection, ess=400.0) for shift, selection in selections.items()}
    assert [trusted for trusted, _ in verdicts.values()] == [True, True, True, True]
    least = [selection.rmse[selection.recommended] for selection in selections.values()]
    assert least == pytest.approx([least[0]] * 4, rel=1e-9)
    said = {sentence.partition(" is recommended: ")[2].replace(f"above {1 + shift:g},", "above r_min,")
            for shift, (_, sentence) in verdicts.items()}
    assert len(said) == 1 and said.pop().endswith("% of the value above r_min, the floor of the logged rewards (their 1% quantile))")


def test_the_verdict_names_the_scale_it_judges_the_rmse_against():
    rmse = {"IPS": 0.3, "DM": 0.6}
    assert verdict(Selection({}, rmse, "DM", 3.0, 5, "x", 1.0), ess=400.0) == (False, (
        "no estimate is trustworthy: even the best estimator, DM, erred by 30% of the value above 1, the floor of the "
        "logged rewards (their 1% quantile) (RMSE) on simulated logs of this shape (threshold 25%)"))
    # 0/1 rewards: judged against the value, as before
    assert verdict(Selection({}, {"DM": 0.05}, "DM", 0.5, 5, "x"), ess=400.0) == (True, (
        "DM (reward-model based) is recommended: the least RMSE on 5 simulated logs of this shape (10% of the value)"))
    clicks = table()
    problem = BanditProblem(BanditFeedback(clicks["action"], clicks["reward"], clicks["pscore"]),
                            np.full((200, 4, 1), 0.25),
                            lambda rows: per_action_features(clicks["context_0"].to_numpy()[rows, None], 4, 1))
    assert simulate_then_select(problem, n_sims=2).r_min == 0.0


class Recorded:
    """An estimate that is undefined (NaN) on the resamples ``undefined`` (0 the whole log's), and
    records what it returned."""

    def __init__(self, undefined):
        self.undefined, self.values = set(undefined), []

    def __call__(self, rows):
        value = np.nan if len(self.values) in self.undefined else float(rows.mean())
        self.values.append(value)
        return value


def test_a_refitted_interval_rests_on_its_defined_refits():
    # one undefined refit made the bounds NaN: more --refits could lose the interval
    from scipy.stats import t

    few = Recorded(undefined={2, 5})                      # 2 of 60 refits undefined: 58 >= 57, 95% of 60
    estimate, lower, upper = refit_interval(few, 50, n_refits=60, alpha=0.05, seed=0)
    defined = np.array([v for v in few.values[1:] if not math.isnan(v)])
    assert len(defined) == 58
    assert upper - estimate == pytest.approx(t.ppf(0.975, 57) * defined.std(ddof=1), rel=1e-12)
    assert estimate - lower == pytest.approx(upper - estimate, rel=1e-12)
    estimate, lower, upper = refit_interval(Recorded(undefined={1, 2, 3, 4}), 50, n_refits=60, alpha=0.05, seed=0)
    assert math.isfinite(estimate) and math.isnan(lower) and math.isnan(upper)  # 56 < 57: no interval


def sndr(action, pscore, n_refits: int) -> dict:
    frame = table(len(action))
    frame["action"], frame["pscore"] = action, pscore
    rows = evaluate_bandit(BanditProblem(BanditFeedback(frame["action"], frame["reward"], frame["pscore"]),
                                         FirstAction().action_dist(frame, 4, 1), lambda r: per_action_features(
                                             frame["context_0"].to_numpy()[r, None], 4, 1)),
                           n_bootstrap=39, n_refits=n_refits)
    return next(row for row in rows if row["estimator"] == "SNDR")


def test_sndr_defined_on_most_refits_has_bounds_and_their_count():
    # the target's action logged 3 times at pscore 0.03 in 100 rounds: 2 of 60 refits miss all three
    rare = np.isin(np.arange(100), [7, 30, 50])
    row = sndr(np.where(rare, 0, 1 + np.arange(100) % 3), np.where(rare, 0.03, 0.97 / 3), n_refits=60)
    assert row["n_replicates"] == 58
    assert math.isfinite(row["lower"]) and row["lower"] < row["estimate"] < row["upper"]


def test_sndr_undefined_on_the_whole_log_counts_no_refits():
    # the target always picks action 0, which the log never holds: n_replicates was 0, SNIPS's None
    row = sndr(1 + np.arange(100) % 3, np.full(100, 1 / 3), n_refits=5)
    assert math.isnan(row["estimate"]) and row["n_replicates"] is None


def test_out_below_a_link_to_nothing_is_refused_before_any_work(tmp_path):
    # accepted, then new_folder failed with FileExistsError after the work
    os.symlink("nowhere", tmp_path / "dangling")
    for out in (tmp_path / "dangling" / "report", tmp_path / "dangling"):
        with pytest.raises(ValueError, match=re.escape(f"--out {out}: {tmp_path / 'dangling'} is a link to nothing "
                                                       "(nowhere); give a folder for the report")):
            check_new_folder(out)


def test_a_csv_that_is_not_utf8_is_told_to_be_saved_as_utf8(tmp_path, capsys):
    # it was told that every row needs the header's number of fields
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(table().assign(name="café").to_csv(index=False).encode("latin-1"))
    assert re.fullmatch(re.escape(f"recoworld ope evaluate: error: {latin1}: the table log is not UTF-8 text (") + ".*"
                        + re.escape("); save it as UTF-8"), evaluate(tmp_path, latin1, capsys=capsys))


def test_a_position_column_empty_in_every_row_is_told_to_go(tmp_path, capsys):
    # it advised dropping every round
    frame = table()
    frame["position"] = np.nan
    assert evaluate(tmp_path, frame, capsys=capsys) == (
        f"recoworld ope evaluate: error: {tmp_path / 'log.csv'}: position is empty in every row; drop the column for a "
        "log of single actions")
