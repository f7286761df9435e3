"""Thompson-sampling logs carry usable propensities: non-zero, with a standard error, and the
study's slate estimators cover the truth on them."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from recoworld.agents.bandits import BernoulliTS
from recoworld.agents.neural_linear import NeuralLinearTS
from recoworld.agents.off_policy import LoggedSlates
from recoworld.agents.sampling import monte_carlo_propensities
from recoworld.agents.thompson import InSlateThompson, LinearTS
from recoworld.envs.rollout import rollout
from recoworld.envs.slate import SlateVectorEnv

from recoworld.apps.ope.config import StudyConfig, make_policy
from recoworld.apps.ope.study import Study
from recoworld.catalog import Catalog
from recoworld.types import Observation


def test_geometric_resampling_stops_at_the_wanted_matches_and_states_an_error():
    # a slate of probability 0.01 under a policy that draws it i.i.d.
    def draw(rng, n, rows):
        hit = rng.random((n, len(rows))) < 0.01
        return np.where(hit[..., None], 0, 1) * np.ones((1, 1, 1), dtype=int)

    action = np.zeros((2000, 1), dtype=int)
    p = monte_carlo_propensities(draw, action, n_samples=10, seed=0, min_matches=4, max_samples=100_000)
    inverse = p["draws"] / 4                                   # N / r: unbiased for 1 / p
    assert abs(inverse.mean() - 100) < 4 * inverse.std() / np.sqrt(len(inverse))
    np.testing.assert_allclose(p["slate"], 4 / p["draws"])
    np.testing.assert_allclose(p["slate_se"], p["slate"] * np.sqrt((1 - p["slate"]) / 4))


def test_linear_ts_logs_nonzero_propensities_and_the_study_covers_the_truth():
    torch.set_num_threads(1)
    config = StudyConfig(truth_users=3000, n_bootstrap=200, n_refits=2, learned=(), sessions=False,
                         estimators=("IPS", "RIPS", "SNIPS"))
    study = Study(config)
    log = study.log(LinearTS(), 300, 0)
    propensity = LoggedSlates.from_log(log).propensity
    assert np.median(propensity) > 0 and (propensity > 0).all()
    target = {"softmax": make_policy("softmax", config, "target")}
    truth, _ = study.true_value(target["softmax"])
    for row in study.estimate(log, target, seed=0):
        assert row["lower"] <= truth <= row["upper"], row


def test_a_slate_out_of_reach_of_the_cap_stops_after_the_first_phase():
    # a 6-position slate whose first position comes up 1 time in 20 and whose rest never does
    def draw(rng, n, rows):
        first = np.where(rng.random((n, len(rows))) < 0.05, 0, 1)
        return np.concatenate([first[..., None], np.full((*first.shape, 5), 9)], -1)

    action = np.zeros((1000, 6), dtype=int)
    p = monte_carlo_propensities(draw, action, n_samples=100, seed=0, min_matches=4, max_samples=1000)
    # at most about (0.10 * 0.45)^(6/2) = 1e-4 (the 95 % bounds of 5 in 100, then 0 in 5) < 1/1000
    np.testing.assert_array_equal(p["draws"], 100)
    np.testing.assert_allclose(p["slate"], 1 / (1000 + 1))     # as the cap reads a row that never matched
    np.testing.assert_array_equal(p["cascade"][:, -1], p["slate"])
    weight = 0.05 / p["position"][:, 0]                        # the first position's IPS weight, relative to the truth
    assert abs(weight.mean() - 1) < 0.06


def test_single_slot_bernoulli_ts_propensities_are_exact_and_match_its_draws():
    catalog = Catalog.synthetic(40, seed=0)
    env = SlateVectorEnv(num_envs=64, catalog=catalog, slate_size=1, num_candidates=6, max_steps=3)
    agent = BernoulliTS(prior_impressions=0.0)
    rollout(env, agent, n_steps=3, seed=0)                     # some clicks, so the posteriors differ
    obs, _ = env.reset(seed=1)
    obs = Observation(obs)
    every = np.stack([agent.propensities(obs, np.full((64, 1), c))["slate"] for c in range(6)], 1)
    np.testing.assert_allclose(every.sum(1), 1.0, atol=1e-8)
    draws = agent.draw_slates(obs, np.random.default_rng(0), 20_000)[:, :, 0]          # [n, B]
    frequency = np.stack([(draws == c).mean(0) for c in range(6)], 1)
    np.testing.assert_allclose(frequency, every, atol=0.015)
    exact = agent.propensities(obs, np.zeros((64, 1), dtype=int))
    np.testing.assert_array_equal(exact["slate_se"], 0.0)


@pytest.mark.parametrize("name, cls", [("linear_ts", LinearTS), ("in_slate_ts", InSlateThompson),
                                       ("bernoulli_ts", BernoulliTS), ("neural_linear_ts", NeuralLinearTS)])
def test_thompson_configs_state_the_class_defaults_of_their_propensity_replays(name, cls):
    config = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "agent" / f"{name}.yaml")
    if "device" in config:
        config.device = "cpu"  # ``${device}`` comes from the top-level config
    agent = instantiate(config)
    assert isinstance(agent, cls)
    for setting in ("propensity_samples", "propensity_matches", "max_propensity_samples"):
        assert config[setting] == getattr(cls(), setting), setting
