"""Review h213's findings on ``recoworld ope evaluate``: softmax position propensities
estimated without zeros, the run's own reward evaluated, a target stating only the whole
slate's probability, a log with position propensities alone, and messages in the user's terms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ope_evaluate import refused

from recoworld.agents.baselines import MostPopularAgent, RandomAgent
from recoworld.agents.logging_policies import EpsilonSoft, SoftmaxPolicy, plackett_luce_marginals
from recoworld.apps.cli import main as cli
from recoworld.catalog import Catalog
from recoworld.envs.slate import SlateVectorEnv

QUICK = ("--world", "synthetic", "--sims", "2", "--refits", "2", "--bootstrap", "39", "--truth-users", "200")
HERE = "tests.test_h217_ope_findings"


# 1. SoftmaxPolicy's estimated position marginals (too many prefixes to sum over)

def estimating_softmax(samples: int, seed: int = 0) -> tuple[SoftmaxPolicy, dict]:
    env = SlateVectorEnv(num_envs=6, catalog=Catalog.synthetic(60, seed=0), slate_size=4, num_candidates=12)
    obs, _ = env.reset(seed=0)
    policy = SoftmaxPolicy(base=MostPopularAgent(), temperature=0.5, max_prefixes=1, propensity_samples=samples)
    policy.setup(env, seed=seed)
    return policy, obs


def test_estimated_softmax_marginals_are_positive_seeded_and_exact_at_the_top():
    policy, obs = estimating_softmax(samples=20)
    dist = policy.action_distribution(obs)
    # counting 20 draws left most candidates at 0 below the top, and shown items with them
    assert (dist > 0).all()
    np.testing.assert_allclose(dist.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(dist, policy.action_distribution(obs))
    np.testing.assert_array_equal(dist, estimating_softmax(samples=20)[0].action_distribution(obs))
    action = policy.act(obs)
    given = policy.propensities(obs, action)
    assert (given["position"] > 0).all()
    np.testing.assert_array_equal(given["position"][:, 0], given["cascade"][:, 0])  # the top position is exact
    np.testing.assert_allclose(dist[:, :, 0], plackett_luce_marginals(policy.logits(obs), 1)[:, :, 0], rtol=1e-12)


def test_estimated_softmax_marginals_approach_the_exact_ones():
    policy, obs = estimating_softmax(samples=2000)
    exact = plackett_luce_marginals(policy.logits(obs), 4)
    assert np.abs(policy.action_distribution(obs) - exact).max() < 0.02


# 2. the run's reward

def write_run(folder, reward: str) -> str:
    """A run directory whose config paid ``reward``, with a one-step log of an epsilon-soft
    logger on the world it paid it in; returns the log's path."""
    from recoworld.envs.rollout import rollout
    from recoworld.logs import EpisodeLog

    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(json.dumps({"world": {}, "env": {"reward": reward}}))
    env = SlateVectorEnv(num_envs=300, catalog=world_catalog(), slate_size=2, num_candidates=5, max_steps=1,
                         reward=reward)
    path = folder / "episodes.parquet"
    with EpisodeLog(path) as log:
        rollout(env, Logger(), n_steps=1, seed=0, logger=log, log_candidates=True)
    return str(path)


def world_catalog():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_module("recoworld.conf", version_base=None):
        return instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)


class Logger(EpsilonSoft):
    """The logging policy of :func:`write_run`, also evaluated on its own log (weights 1)."""

    def __init__(self, **kwargs):
        super().__init__(base=MostPopularAgent(), epsilon=0.5, **kwargs)


def test_a_run_paid_watch_time_is_evaluated_on_watch_time(tmp_path):
    log = write_run(tmp_path / "run", "watch_time")
    cli(["ope", "evaluate", "--log", log, "--policy", f"{HERE}:Logger", *QUICK, "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["value"] == "expected watch_time per slate (column watch_fraction)"
    paid = pd.read_parquet(log)
    ips = next(row["estimate"] for row in report["estimates"] if row["estimator"] == "IPS")
    # on its own log every weight is 1: IPS is the mean reward paid, not the mean clicks
    assert ips == pytest.approx(paid["reward"].mean(), rel=1e-6)
    assert ips != pytest.approx(paid["clicked"].apply(np.sum).mean(), rel=1e-3)


@pytest.mark.parametrize("reward, paid", [("likes", "likes"), ({"clicks": 1.0}, "clicks"), (None, "clicks")])
def test_the_paid_reward_is_read_from_the_run(tmp_path, reward, paid):
    from recoworld.apps.ope.slate_evaluation import paid_reward

    log = tmp_path / "episodes.parquet"
    if reward is not None:  # None: a log outside a run directory
        (tmp_path / ".hydra").mkdir()
        (tmp_path / ".hydra" / "config.yaml").write_text(json.dumps({"world": {}, "env": {"reward": reward}}))
    assert paid_reward(str(log)) == paid


def test_a_paid_reward_the_run_interpolated_is_read_as_the_run_resolved_it(tmp_path):
    """Hydra saves the run's config unresolved: an interpolated reward is the one it paid."""
    from recoworld.apps.ope.slate_evaluation import paid_reward

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "world: {}\nagent: {}\nenv:\n  reward: ${oc.select:agent.reward,likes}\n")
    assert paid_reward(str(tmp_path / "episodes.parquet")) == "likes"


@pytest.mark.parametrize("reward, weights", [("mix", "{'clicks': 1.0, 'watch_time': 1.0, 'retention': 5.0, "
                                                    "'compliance': 1.0}"),
                                             ("retention", "{'retention': 1.0}"),
                                             ({"clicks": 2.0}, "{'clicks': 2.0}")])
def test_a_reward_the_log_holds_no_column_of_is_refused(tmp_path, reward, weights):
    from recoworld.apps.ope.slate_evaluation import paid_reward

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(json.dumps({"world": {}, "env": {"reward": reward}}))
    log = str(tmp_path / "episodes.parquet")
    with pytest.raises(ValueError) as error:
        paid_reward(log)
    assert str(error.value) == (
        f"{log}: its run paid env.reward={reward} (weights {weights}), but a slate log holds a reward per position "
        "only for clicks, watch_time, likes (columns clicked, watch_fraction, liked); evaluate the log of a run paid "
        "one of them (env.reward=clicks, say)")


# 3.-5. the target's propensities, a log with position propensities alone

@pytest.fixture(scope="module")
def clicks_log(tmp_path_factory):
    """A one-step log of :class:`Logger` paid clicks, outside a run directory."""
    from recoworld.envs.rollout import rollout
    from recoworld.logs import EpisodeLog

    env = SlateVectorEnv(num_envs=300, catalog=world_catalog(), slate_size=2, num_candidates=5, max_steps=1)
    path = tmp_path_factory.mktemp("log") / "episodes.parquet"
    with EpisodeLog(path) as log:
        rollout(env, Logger(), n_steps=1, seed=0, logger=log, log_candidates=True)
    return str(path)


class SlateOnly(RandomAgent):
    """A uniform random agent that states only the whole slate's probability (as Recommender allows)."""

    def propensities(self, obs, action):
        return {"slate": super().propensities(obs, action)["slate"]}


class Inflated(RandomAgent):
    """An agent that returns importance weights where probabilities belong."""

    def propensities(self, obs, action):
        return {key: value * 100 for key, value in super().propensities(obs, action).items()}


def test_a_target_that_states_only_the_slate_probability_is_evaluated_by_the_estimators_it_allows(clicks_log, tmp_path):
    cli(["ope", "evaluate", "--log", clicks_log, "--policy", f"{HERE}:SlateOnly", *QUICK,
         "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [row["estimator"] for row in report["estimates"]] == ["IPS", "SNIPS", "DM"]
    assert list(report["diagnostics"]) == ["slate"]
    assert (f"--policy '{HERE}:SlateOnly': its propensities() gives no 'position' nor 'cascade', so IIPS, SNIIPS, "
            "RIPS, SNRIPS, CascadeDR were left out; return them to have these estimators") in report["warnings"]


def test_probabilities_of_the_policy_out_of_range_are_named_in_its_terms(clicks_log, tmp_path, capsys):
    message = refused(capsys, "--log", clicks_log, "--policy", f"{HERE}:Inflated", *QUICK, "--out", str(tmp_path / "o"))
    assert message == (f"--policy '{HERE}:Inflated': propensities(obs, action)['slate'][0] = 5.0 exceeds 1; pass "
                       "probabilities, not importance weights or unnormalised scores (asked about 300 logged slates of "
                       "2); return the probabilities with which act would choose the given slates")


@pytest.fixture
def positions_log(clicks_log, tmp_path):
    """:func:`clicks_log` with position_propensity alone."""
    table = pq.read_table(clicks_log)
    frame = table.to_pandas()
    frame["propensity"], frame["cascade_propensity"] = None, None
    log = tmp_path / "positions.parquet"
    pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), log)
    return str(log)


def test_a_log_with_position_propensities_alone_is_evaluated(positions_log, tmp_path):
    cli(["ope", "evaluate", "--log", positions_log, "--policy", "most_popular", *QUICK, "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [row["estimator"] for row in report["estimates"]] == ["IIPS", "SNIIPS", "DM"]
    assert "logger" in report["selection"]["protocol"]


def test_a_target_and_a_log_without_propensities_in_common_are_refused(positions_log, tmp_path, capsys):
    message = refused(capsys, "--log", positions_log, "--policy", f"{HERE}:SlateOnly", *QUICK,
                      "--out", str(tmp_path / "out"))
    assert message == (f"--policy '{HERE}:SlateOnly': its propensities() gives 'slate', but {positions_log} logged "
                       "only position_propensity: no weighting estimator has both; return 'position' from "
                       "propensities() too")


def test_candidate_lists_of_several_lengths_are_named_as_candidates_with_a_row():
    from recoworld.logs import LogSchemaError, list_column

    log = pd.DataFrame({"candidate_ids": [[1, 2, 3], [4, 5, 6], [1, 2, 3, 4, 5]]})
    with pytest.raises(LogSchemaError, match=r"^column 'candidate_ids' holds lists of lengths 3\.\.5 \(row 0: 3 "
                                             r"candidates per request; row 2: 5\); split the log by the number of "
                                             r"candidates first$"):
        list_column(log, "candidate_ids")
