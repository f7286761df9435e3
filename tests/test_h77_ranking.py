"""The fidelity policy ranking: agents of equal click-through share a rank (the average of
the places they take), and the report says how ties are ranked."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.apps.fidelity import ranking


@pytest.mark.parametrize("values, expected", [
    ({"a": 0.3, "b": 0.2, "c": 0.1}, {"a": 1, "b": 2, "c": 3}),
    ({"a": 0.1, "b": 0.3, "c": 0.3, "d": 0.05}, {"b": 1.5, "c": 1.5, "a": 3, "d": 4}),
    ({"a": 0.2, "b": 0.5, "c": 0.2, "d": 0.2}, {"b": 1, "a": 3, "c": 3, "d": 3}),
    ({"a": 0.2, "b": 0.2}, {"a": 1.5, "b": 1.5}),
])
def test_tied_agents_share_the_average_of_their_places(values, expected):
    ranks = ranking.ranks(values)
    assert ranks == expected
    assert sum(ranks.values()) == len(values) * (len(values) + 1) / 2, "average ranks keep the sum of 1..n"
    assert all(type(r) is int for n, r in ranks.items() if float(expected[n]).is_integer()), "whole ranks read 1, 2"


def test_the_report_ranks_tied_agents_alike_and_says_how(monkeypatch):
    simulated = {"random": 0.05, "most_popular": 0.125, "linucb": 0.125}
    replayed = {"random": 0.1, "most_popular": 0.1, "linucb": 0.3}
    rounds = ranking.ReplayRounds(*(np.zeros((1, 2), dtype=np.int64) for _ in range(5)))
    monkeypatch.setattr(ranking, "replay_rounds", lambda split, config: rounds)
    monkeypatch.setattr(ranking, "simulator_value", lambda world, name, config: simulated[name])
    monkeypatch.setattr(ranking, "replay_value", lambda world, name, rounds, config: replayed[name])
    report = ranking.policy_ranking(None, None, ranking.RankingConfig(agents=tuple(simulated)))
    assert {n: (a["simulator_rank"], a["replay_rank"]) for n, a in report["agents"].items()} == {
        "random": (3, 2.5), "most_popular": (1.5, 2.5), "linucb": (1.5, 1)}
    assert report["ranks"] == ranking.TIES
    assert "share the average of the places they take" in report["ranks"]


def test_the_report_page_says_how_tied_agents_are_ranked():
    from recoworld.apps.fidelity.page import ranking_section

    agents = {"random": {"simulator_ctr": 0.1, "simulator_rank": 1.5, "replay_ctr": 0.2, "replay_rank": 1},
              "linucb": {"simulator_ctr": 0.1, "simulator_rank": 1.5, "replay_ctr": 0.1, "replay_rank": 2}}
    section = "\n".join(ranking_section({"replay_rounds": 40, "settings": {"num_candidates": 20, "slate_size": 5},
                                         "chance_ctr": 0.05, "kendall_tau": 0.0, "p_value": 1.0, "agents": agents,
                                         "ranks": ranking.TIES}))
    assert f"Ranks: {ranking.TIES}." in section
    assert "| random | 0.1000 | 1.5 | 0.2000 | 1 |" in section
