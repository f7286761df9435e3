"""``recoworld ope evaluate`` speaks of the user's own things as they are: a log path or a
policy name with brackets is printed literally (never read as rich markup), and an error
raised through RecoWorld's code is placed at the user's line that made the call."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from test_ope_evaluate import table_log

import recoworld.types
from recoworld.apps.cli import main as cli
from recoworld.apps.ope.policies import raised
from recoworld.types import Observation

QUICK = ("--sims", "2", "--refits", "2", "--bootstrap", "39")


@pytest.mark.parametrize("folder", ["[exp]", "[/exp]"], ids=["style_tag", "closing_tag"])
def test_a_log_path_with_brackets_is_printed_as_it_is(tmp_path, capsys, monkeypatch, folder):
    monkeypatch.chdir(tmp_path)  # a short path: the title fits on one line
    Path(folder).mkdir(parents=True)  # "[/exp]" is the folder "exp]" in "["
    log = table_log(Path(folder) / "log.csv")
    status = cli(["ope", "evaluate", "--log", log, "--policy", "test_ope_evaluate:UniformBandit", *QUICK,
                  "--out", str(tmp_path / "out")])
    assert status == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["log"] == log
    title = next(line for line in capsys.readouterr().out.splitlines() if "rounds, 95% CI)" in line)
    assert title.strip() == f"test_ope_evaluate:UniformBandit on {log} (60 rounds, 95% CI)"


def test_a_policy_name_and_warnings_with_brackets_are_printed_as_they_are(capsys):
    from recoworld.apps.ope.evaluate import show

    keys = ("n", "ess", "ess_share", "mean_weight", "max_weight", "top1_share", "zero_share")
    show({"policy": "my[v2].zip", "log": "runs/[exp]/log.parquet", "n": 2, "alpha": 0.05, "estimates": [],
          "diagnostics": {"action": dict.fromkeys(keys, 1.0)}, "selection": {"protocol": "x", "bias": {}, "rmse": {}},
          "verdict": {"sentence": "no estimate is trustworthy: [bold] is no style here"},
          "warnings": ["--policy 'my[v2].zip': action_dist gave [/red] other probabilities"]})
    printed = capsys.readouterr().out
    assert "my[v2].zip on runs/[exp]/log.parquet (2 rounds, 95% CI)" in printed
    assert "no estimate is trustworthy: [bold] is no style here (protocol: x)" in printed
    assert "warning: --policy 'my[v2].zip': action_dist gave [/red] other probabilities" in printed


def first_line_of(function) -> int:
    return function.__code__.co_firstlineno + 1


def reads_a_missing_field():
    return Observation({"candidate_ids": [[0, 1]]})["no_such_field"]


def builds_a_bad_logger():
    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import EpsilonSoft

    return EpsilonSoft(base=MostPopularAgent(), epsilon=5)


def said(function) -> str:
    """``raised`` of what ``function`` raises, called as ``ope evaluate`` calls a policy."""
    try:
        function()
    except Exception as error:  # noqa: BLE001 - whatever it raises is said
        return raised(error)
    raise AssertionError(f"{function} raised nothing")


@pytest.mark.parametrize("function, line, error", [
    (reads_a_missing_field, first_line_of(reads_a_missing_field), "KeyError"),  # through recoworld/types.py
    (builds_a_bad_logger, first_line_of(builds_a_bad_logger) + 3, "ValueError: EpsilonSoft.epsilon=5"),  # through agents/
], ids=["recoworld_package", "mapped_agents_folder"])
def test_an_error_raised_through_recoworld_names_the_users_line(function, line, error):
    message = said(function)
    assert message.startswith(error)
    assert message.endswith(f" ({__file__}, line {line})")


def test_an_error_raised_only_in_recoworld_names_recoworld_s_line():
    observation = Observation({"candidate_ids": [[0, 1]]})
    message = said(partial(observation.__getitem__, "no_such_field"))  # no frame of this file below the call
    assert message.startswith("KeyError: \"observation has no 'no_such_field'")
    assert f" ({recoworld.types.__file__}, line " in message
