"""Fidelity metrics on hand-made inputs, and the report end to end on a small simulated world."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.calibrate.concentration import concentration_experiment, top_share
from recoworld.apps.fidelity.report import (evaluate, held_out_split, simulated_consumption, simulated_probabilities,
                                           write_report)
from recoworld.calibration.metrics import (Classification, concentration_curve, decide, expected_decisions,
                                           genre_shares, gini, one_to_m_lists, rmse, user_auc)
from recoworld.apps.fidelity.ranking import RankingConfig, policy_ranking, replay_rounds

from small_world_report import evaluated


# --------------------------------------------------------------------- AUC
def test_user_auc_on_hand_made_scores():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.2, 0.5],
                           [0.1, 0.2, 0.9, 0.8, 0.5],
                           [0.5, 0.5, 0.5, 0.5, 0.5],
                           [0.3, 0.2, 0.1, 0.0, 0.4]])
    positive = torch.tensor([[1, 1, 0, 0, 0]] * 3 + [[0, 0, 0, 0, 0]], dtype=torch.bool)
    negative = torch.tensor([[0, 0, 1, 1, 0]] * 4, dtype=torch.bool)  # item 4 is neither
    auc = user_auc(scores, positive, negative)
    assert auc[:3].tolist() == [1.0, 0.0, 0.5]  # perfect, reversed, all tied
    assert torch.isnan(auc[3]), "a user without positives has no AUC"
    # one of four pairs is ordered wrongly
    assert float(user_auc(torch.tensor([[0.9, 0.3, 0.5, 0.1]]), torch.tensor([[1, 1, 0, 0]], dtype=torch.bool),
                          torch.tensor([[0, 0, 1, 1]], dtype=torch.bool))) == 0.75


def test_user_auc_rejects_overlapping_masks():
    both = torch.tensor([[True, False]])
    with pytest.raises(ValueError, match="item 0 of user 0 is both positive and negative"):
        user_auc(torch.zeros(1, 2), both, both)


# ------------------------------------------------------------- 1:m protocol
def test_one_to_m_lists_mix_m_negatives_per_positive():
    positive = torch.zeros(3, 40, dtype=torch.bool)
    positive[0, :2] = positive[1, :5] = positive[2, :1] = True
    negative = ~positive
    negative[2, 10:] = False  # user 2 has only 9 negatives
    lists = one_to_m_lists(positive, negative, m=3, seed=0)
    per_user = np.bincount(lists.users.numpy(), minlength=3)
    assert per_user.tolist() == [2 + 6, 5 + 15, 1 + 3]
    assert torch.equal(lists.labels, positive[lists.users, lists.items])
    assert not (negative == False)[lists.users[~lists.labels], lists.items[~lists.labels]].any()  # noqa: E712
    again = one_to_m_lists(positive, negative, m=3, seed=0)
    assert torch.equal(again.items, lists.items)
    assert one_to_m_lists(positive, negative, m=9, seed=0).labels.logical_not().sum() == 2 * 9 + 35 + 9  # user 1 has 35 negatives
    with pytest.raises(ValueError, match="m=0"):
        one_to_m_lists(positive, negative, m=0)


def test_f1_threshold_is_the_best_threshold_of_the_lists_it_reads():
    from recoworld.calibration.metrics import f1_threshold

    p = torch.tensor([0.9, 0.8, 0.8, 0.4, 0.3, 0.1])
    labels = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    # Yes to the four most probable: TP 3, FP 1, FN 0, F1 6/7; the threshold lies midway to the next.
    assert f1_threshold(p, labels) == pytest.approx(0.35)
    assert decide(p, labels, 0.35).f1 == pytest.approx(6 / 7)
    gen = torch.Generator().manual_seed(0)
    labels = torch.rand(500, generator=gen) < 0.3
    p = (0.35 * labels + 0.65 * torch.rand(500, generator=gen)).round(decimals=2)  # ties included
    best = decide(p, labels, f1_threshold(p, labels)).f1
    assert all(best >= decide(p, labels, t).f1 for t in np.linspace(0.0, 1.0, 201))
    assert f1_threshold(p, torch.zeros(500, dtype=torch.bool)) == 1.0, "no positive: never say yes"
    with pytest.raises(ValueError, match="500 probabilities but 3 labels"):
        f1_threshold(p, labels[:3])


def test_decisions_and_their_f1_on_hand_made_probabilities():
    p = torch.tensor([0.9, 0.6, 0.4, 0.2, 0.7, 0.1])
    labels = torch.tensor([1, 0, 1, 0, 1, 0], dtype=torch.bool)
    # yes = {0.9, 0.6, 0.7}: TP 2, FP 1, FN 1, TN 2
    c = decide(p, labels)
    assert (c.accuracy, c.precision, c.recall) == pytest.approx((4 / 6, 2 / 3, 2 / 3))
    assert c.f1 == pytest.approx(2 / 3)
    e = expected_decisions(p, labels)
    tp, fp, fn = 0.9 + 0.4 + 0.7, 0.6 + 0.2 + 0.1, 0.1 + 0.6 + 0.3
    assert e.precision == pytest.approx(tp / (tp + fp)) and e.recall == pytest.approx(tp / (tp + fn))
    assert Classification.from_counts(0, 0, 3, 3).f1 == 0.0  # never says yes: no F1, no division by zero


# ------------------------------------------------------------ aggregates
def test_gini_on_known_distributions():
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(3 / 4)  # (n - 1) / n when one takes all
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert gini([0, 0]) == 0.0
    assert gini([3, 1, 2]) == gini([1, 2, 3]), "order does not matter"
    with pytest.raises(ValueError, match=">= 0"):
        gini([1, -1])
    with pytest.raises(ValueError, match="empty"):
        gini([])


def test_concentration_curve_top_share_and_genre_shares():
    x, y = concentration_curve([1, 7, 2], order=[10, 30, 20])  # ranked: 7, 2, 1
    assert x.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert y.tolist() == pytest.approx([0.7, 0.9, 1.0])
    assert top_share(np.array([1.0] * 99 + [101.0]), 0.01) == pytest.approx(0.505)
    shares = genre_shares([2, 1], [[0.5, 0.5], [0.0, 1.0]])
    assert shares.tolist() == pytest.approx([1 / 3, 2 / 3])
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))


def test_simulated_consumption_takes_allowed_items_in_the_right_number():
    gen = torch.Generator().manual_seed(0)
    probability = torch.rand(50, 30, generator=gen)
    allowed = torch.rand(50, 30, generator=gen) < 0.7
    counts = torch.minimum(torch.randint(1, 10, (50,), generator=gen), allowed.sum(1))
    consumed = simulated_consumption(probability, allowed, counts)
    assert consumed.sum() == counts.sum()
    # Each user takes at most one of each item, so no item exceeds the users allowed it.
    assert (consumed <= allowed.sum(0)).all()
    # An item with a tiny odds ratio is (almost) never chosen when others are available.
    probability[:, 0] = 1e-9
    assert simulated_consumption(probability, torch.ones(50, 30, dtype=torch.bool), torch.full((50,), 3))[0] == 0


# ------------------------------------------------------------ end to end
def test_fidelity_report_end_to_end(small_world, tmp_path):
    world, _ = small_world
    results = evaluated(small_world)
    for name in ("calibrated user", "MF baseline"):
        entry = results["models"][name]
        assert 0.5 < entry["auc"] <= 1.0, "both models rank better than chance on their own world's data"
        for m in (1, 3, 9):
            assert 0 <= entry[f"1:{m}"]["f1"] <= 1
    distribution = results["ratings"]["distribution"]
    assert all(sum(shares) == pytest.approx(1.0) for shares in distribution.values())
    assert results["aggregate"]["held-out"]["gini"] > 0
    path = write_report(results, tmp_path / "report", world)
    text = path.read_text()
    assert "| calibrated user |" in text and "## Aggregate realism" in text
    for png in ("long_tail.png", "genre_shares.png", "ratings.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
    assert "auc" in json.loads((tmp_path / "report" / "metrics.json").read_text())["models"]["MF baseline"]


def test_fidelity_refuses_a_world_fitted_on_other_data(small_world):
    world, data = small_world
    changed = type(data)(data.ratings.assign(rating=6 - data.ratings["rating"]), data.items, data.users)
    with pytest.raises(ValueError, match="held-out ratings differ"):
        evaluate(world, data=changed)


def test_concentration_experiment_is_deterministic_and_bounded(small_world):
    world, _ = small_world
    kwargs = dict(weights=(0.0, 2.0), n_users=30, steps=20, every=10, slate_size=3, candidates=10, policy="random")
    series = concentration_experiment(world.catalog, world.config, world.population(), **kwargs)
    assert list(series["step"]) == [10, 20, 10, 20]
    assert series[["gini_exposure", "gini_consumption"]].apply(lambda c: c.between(0, 1)).all().all()
    again = concentration_experiment(world.catalog, world.config, world.population(), **kwargs)
    assert series.equals(again)
    with pytest.raises(ValueError, match="policy='best'"):
        concentration_experiment(world.catalog, world.config, world.population(), policy="best")


# ------------------------------------------------------------ policy ranking
def test_replay_rounds_mix_each_held_out_item_with_never_rated_candidates(small_world):
    world, data = small_world
    _, split = held_out_split(world, data)
    config = RankingConfig(num_candidates=8, slate_size=3, rounds=3, history_length=5)
    rounds = replay_rounds(split, config)
    rated = {u: set(g["item_id"]) for u, g in pd.concat([split.train, split.test]).groupby("user_id")}
    held = {u: list(g["item_id"]) for u, g in split.test.groupby("user_id")}
    for r in range(config.rounds):
        for u in range(split.n_users):
            candidates = rounds.candidates[r, u]
            assert len(set(candidates)) == config.num_candidates
            if rounds.item[r, u] >= 0:
                assert rounds.item[r, u] == held[u][r], "round r replays the user's r-th held-out rating"
                assert set(candidates) & rated[u] == {rounds.item[r, u]}, "the others were never rated"
                # The history is what the user rated before, newest first.
                assert rounds.history[r, u, 0] not in held[u][r:]


def test_policy_ranking_ranks_agents_both_ways_and_refuses_the_oracle(small_world):
    world, data = small_world
    _, split = held_out_split(world, data)
    config = RankingConfig(agents=("random", "most_popular", "linucb"), num_candidates=10, slate_size=3,
                           num_envs=16, steps=8, rounds=3)
    ranking = policy_ranking(world, split, config)
    agents = ranking["agents"]
    for label in ("simulator_rank", "replay_rank"):
        assert sorted(a[label] for a in agents.values()) == [1, 2, 3]
    assert -1.0 <= ranking["kendall_tau"] <= 1.0
    assert all(0.0 <= a["replay_ctr"] <= 1.0 and 0.0 <= a["simulator_ctr"] <= 1.0 for a in agents.values())
    assert ranking == policy_ranking(world, split, config), "seeded: the same ranking again"
    with pytest.raises(ValueError, match="oracle reads the simulator's private state"):
        policy_ranking(world, split, RankingConfig(agents=("random", "oracle")))


# ------------------------------------------------------- splits and baselines
def test_bootstrap_intervals_hold_the_estimate_and_pool_per_user_counts():
    from recoworld.calibration import bootstrap

    weights = bootstrap.user_draws(4, draws=300, seed=0)
    assert (weights.sum(1) == 4).all(), "each resample draws as many users as there are"
    auc = bootstrap.mean_auc(torch.tensor([1.0, 0.5, float("nan"), 0.75]), weights)
    assert auc["value"] == pytest.approx(0.75) and auc["low"] <= 0.75 <= auc["high"]
    p = torch.tensor([0.9, 0.6, 0.4, 0.2, 0.7, 0.1])
    labels = torch.tensor([1, 0, 1, 0, 1, 0], dtype=torch.bool)
    f1 = bootstrap.pooled_f1(p, labels, torch.tensor([0, 0, 1, 1, 2, 3]), 4, weights)
    assert f1["value"] == pytest.approx(decide(p, labels).f1)
    # User 3's list alone holds no chosen item and no "yes": a resample of only that user
    # has no F1, and is left out (counted as such) rather than read as 0. (The resamples
    # without user 0 are left out of the others: a third of them, too many for an interval.)
    with_user_0 = weights[weights[:, 0] > 0]
    lonely = bootstrap.pooled_f1(p, labels, torch.tensor([0, 0, 0, 0, 0, 3]), 4,
                                 np.array([[0, 0, 0, 4], *with_user_0]))
    assert lonely["low"] > 0.0
    assert (lonely["n_draws"], lonely["n_defined"]) == (len(with_user_0) + 1, len(with_user_0))
    assert bootstrap.user_rmse(np.array([1.0, -1.0, 2.0]), np.array([0, 0, 1]), 4, weights)["value"] == \
        pytest.approx(np.sqrt(2.0))
    p = p + 0.05  # each in the middle of a bin of its own
    curve = bootstrap.reliability(p, labels, torch.tensor([0, 0, 1, 1, 2, 3]), 4, weights)
    assert sum(c["n"] for c in curve["curve"]) == 6
    # Bins of one prediction each here: the ECE is the mean |label - prediction|.
    assert curve["ece"]["value"] == pytest.approx(float((labels.double() - p.double()).abs().mean()))


def test_time_cut_split_holds_out_later_ratings_of_users_seen_before():
    from recoworld.calibration.split import time_cut, time_cut_split

    ratings = pd.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [0, 1, 0, 2, 1], "rating": 4,
                            "timestamp": [1, 10, 2, 20, 15]})
    assert time_cut(ratings, 0.4) == 15
    split = time_cut_split(ratings, 15, 3, 3)
    assert split.train["timestamp"].tolist() == [1, 10, 2]
    # User 2 was first seen at the cut: no past to fit, so not held out either.
    assert split.test[["user_id", "timestamp"]].values.tolist() == [[1, 20]]


def test_splits_score_the_calibrated_user_and_the_baselines(small_world, tmp_path, monkeypatch):
    from recoworld.apps.calibrate import dynamics
    from recoworld.apps.fidelity.splits import BASELINES, evaluate_split, split_targets

    world, data = small_world
    rounds, fit_lives = [], dynamics.fit_lives
    monkeypatch.setattr(dynamics, "fit_lives", lambda *a, **k: rounds.append(k["iterations"]) or fit_lives(*a, **k))
    splits = {kind: evaluate_split(world, data, kind, draws=50) for kind in ("latest", "time", "users")}
    assert rounds == [0, 0], "the split worlds' sessions are not used: their lives are not fitted"
    assert splits["users"]["users"] == 8, "10% of the 80 users are held out, and only they are scored"
    assert splits["latest"]["users"] == 80
    for split in splits.values():
        assert set(split["models"]) == {"calibrated user", *BASELINES}
        for entry in split["models"].values():
            for metric in ("auc", *(f"f1_1to{m}{at}" for m in (1, 3, 9) for at in ("", "_at_validation_threshold"))):
                assert entry[metric]["low"] <= entry[metric]["value"] <= entry[metric]["high"], metric
            assert all(0 < t < 1 for t in entry["decision_threshold"].values())
        assert split["models"]["calibrated user"]["auc"]["value"] > 0.6
        assert set(split["rmse"]) == {"calibrated user", "MF", "item mean", "global mean"}
    _assert_thresholds_come_from_the_validation_fold(world, data, splits["latest"])
    targets = split_targets(splits, 0.92, 0.8, 0.05)
    assert set(targets) == {"latest: AUC >= 0.92", "latest: F1 at 1:1 (validation-chosen threshold) >= 0.8",
                            "time cut: AUC >= popularity baselines + 0.05", "time cut: AUC >= best baseline"}
    results = evaluated(small_world)
    results.update(splits=splits, split_targets=targets)
    path = write_report(results, tmp_path / "report", world)
    assert "### Split: a global time cut" in path.read_text()
    assert (path.parent / "calibration.png").stat().st_size > 1000


def _assert_thresholds_come_from_the_validation_fold(world, data, latest: dict):
    """The calibrated user's thresholds are the best ones of the validation fold's lists,
    scored by the choice model fitted without that fold; on the test lists they do no
    better than the test lists' own best threshold."""
    from recoworld.apps.fidelity.splits import (calibrated_validation_probabilities, decision_lists,
                                                decision_thresholds, split_world)
    from recoworld.calibration.metrics import f1_threshold
    from recoworld.calibration.split import interaction_matrix

    tested, folds = split_world(world, data, "latest")
    shape = (folds.n_users, folds.n_items)
    trained = interaction_matrix(folds.split.train, *shape)
    validation = decision_lists(interaction_matrix(folds.inner.test, *shape), ~trained, seed=0)
    expected = decision_thresholds(calibrated_validation_probabilities(tested, folds), validation)
    entry = latest["models"]["calibrated user"]
    assert entry["decision_threshold"] == {f"1:{m}": t for m, t in expected.items()}
    test = decision_lists(interaction_matrix(folds.split.test, *shape),
                          ~(trained | interaction_matrix(folds.split.test, *shape)), seed=0)[1]
    p = simulated_probabilities(tested)[test.users, test.items]
    assert entry["f1_1to1_at_validation_threshold"]["value"] == pytest.approx(decide(p, test.labels, expected[1]).f1)
    assert entry["f1_1to1_at_validation_threshold"]["value"] <= decide(p, test.labels, f1_threshold(p, test.labels)).f1
