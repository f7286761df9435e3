"""``recoworld ope evaluate`` with the user's own log and policy: a bad cell is named by the
row the user sees, a policy that raises is a usage error saying where, and a policy whose
probabilities change from call to call is warned of."""

import json

import numpy as np
import pandas as pd
import pytest

from recoworld.apps.cli import main as cli
from tests.test_ope_evaluate import refused, table_log

QUICK = ("--sims", "2", "--refits", "2", "--bootstrap", "39")


def with_value(n, row, value):
    """``n`` numbers of a valid column (1/3) with ``value`` at 0-based ``row``."""
    column = np.full(n, 1 / 3)
    column[row] = value
    return column


@pytest.mark.parametrize("column, values, message", [
    ("pscore", with_value(60, 7, np.nan),
     "pscore at row 8 is nan; log the probability with which the logging policy chose the action"),
    ("pscore", with_value(60, 0, 1.5),
     "pscore at row 1 = 1.5 exceeds 1; pass probabilities, not importance weights or unnormalised scores"),
    ("reward", with_value(60, 30, np.inf),
     "reward at row 31 is inf; drop or impute rounds with missing rewards before estimating"),
    ("action", np.where(np.arange(60) == 12, 1.5, np.arange(60) % 3),
     "action at row 13 = 1.5 is not an integer; action holds action ids"),
    ("position", np.where(np.arange(60) == 59, -1, 0),
     "position at row 60 = -1, but positions start at 0"),
])
def test_a_bad_number_in_a_table_log_is_named_by_the_row_a_reader_counts(tmp_path, capsys, column, values, message):
    log = table_log(tmp_path / "log.csv", **{column: values})
    row = int(message.split(" at row ")[1].split()[0])
    bad = pd.read_csv(log)[column].iloc[row - 1]           # row counted from 1 after the header
    assert bad == values[row - 1] or (np.isnan(bad) and np.isnan(values[row - 1]))
    assert refused(capsys, "--log", log, "--policy", "tests.test_ope_evaluate:UniformBandit") == f"{log}: {message}"


class RaisingBandit:
    """A bandit policy with a bug: it reads a column the log does not have."""

    def action_dist(self, rows, n_actions, n_positions):
        return rows["context_9"].to_numpy()


class BrokenConstructor:
    """A bandit policy whose constructor fails (a model file that is not there)."""

    def __init__(self):
        raise FileNotFoundError("model.pt")


def line_of(function, offset: int) -> int:
    return function.__code__.co_firstlineno + offset


def test_a_policy_that_raises_is_a_usage_error_saying_where(tmp_path, capsys):
    log = table_log(tmp_path / "log.csv")
    spec = "tests.test_h71_evaluate_policy:RaisingBandit"
    assert refused(capsys, "--log", log, "--policy", spec, "--out", str(tmp_path / "out")) == (
        f"--policy {spec!r}: action_dist(rows, n_actions=3, n_positions=1) raised KeyError: 'context_9' "
        f"({__file__}, line {line_of(RaisingBandit.action_dist, 1)}); fix the policy (call it on the log's rows in "
        "Python for the traceback)")
    spec = "tests.test_h71_evaluate_policy:BrokenConstructor"
    assert refused(capsys, "--log", log, "--policy", spec, "--out", str(tmp_path / "out")) == (
        f"--policy {spec!r} with no --policy-arg: BrokenConstructor() raised FileNotFoundError: model.pt "
        f"({__file__}, line {line_of(BrokenConstructor.__init__, 1)}); give --policy-arg KEY=VALUE for the "
        "arguments of BrokenConstructor()")
    assert not (tmp_path / "out").exists()


class SamplingBandit:
    """A bandit policy that returns a sampled choice (one-hot) in place of its probabilities."""

    def action_dist(self, rows, n_actions, n_positions):
        dist = np.zeros((len(rows), n_actions, n_positions))
        dist[np.arange(len(rows)), np.random.randint(0, n_actions, len(rows))] = 1.0
        return dist


def report_of(tmp_path, name, policy):
    out = tmp_path / name
    assert cli(["ope", "evaluate", "--log", table_log(tmp_path / "log.csv"), "--policy", policy, *QUICK,
                "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def test_a_policy_whose_probabilities_change_between_calls_is_warned_of(tmp_path):
    spec = "tests.test_h71_evaluate_policy:SamplingBandit"
    unsteady = [w for w in report_of(tmp_path, "sampled", spec)["warnings"] if "asked again" in w]
    assert len(unsteady) == 1 and unsteady[0].startswith(
        f"--policy {spec!r}: action_dist gave other probabilities when asked again about the same rows (")
    assert unsteady[0].endswith("these estimates will not repeat, whatever --seed; return the policy's probabilities "
                                "rather than a sampled choice, and seed any randomness it needs (e.g. with a "
                                "--policy-arg seed=0)")
    steady = report_of(tmp_path, "uniform", "tests.test_ope_evaluate:UniformBandit")
    assert not [w for w in steady["warnings"] if "asked again" in w]


def test_a_policy_module_that_fails_on_import_is_a_usage_error_saying_where(tmp_path, capsys, monkeypatch):
    (tmp_path / "h71_broken_policy.py").write_text("import numpy\n\nscale = undefined_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert refused(capsys, "--log", table_log(tmp_path / "log.csv"), "--policy", "h71_broken_policy:Bandit") == (
        "--policy 'h71_broken_policy:Bandit': cannot import 'Bandit' from 'h71_broken_policy' (NameError: name "
        f"'undefined_name' is not defined ({tmp_path / 'h71_broken_policy.py'}, line 3)); give module:Attribute of "
        "an importable module")
    assert refused(capsys, "--log", table_log(tmp_path / "log.csv"), "--policy", "h71_no_such_module:Bandit") == (
        "--policy 'h71_no_such_module:Bandit': cannot import 'Bandit' from 'h71_no_such_module' (ModuleNotFoundError: "
        "No module named 'h71_no_such_module'); give module:Attribute of an importable module")
