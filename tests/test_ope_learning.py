"""Off-policy learning: a recommender trained from logs beats the policy that logged them online."""

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.agents.baselines import MostPopularAgent
from recoworld.agents.logging_policies import EpsilonSoft
from recoworld.agents.off_policy import LinearScorer, learn_from_log
from recoworld.apps.ope.study import Study, StudyConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def study():
    return Study(StudyConfig(n_items=100, truth_users=3000, truth_draws=2))


@pytest.fixture(scope="module")
def uniform_log(study):
    return study.log(EpsilonSoft(base=MostPopularAgent(), epsilon=1.0), 1500, seed=0)


@pytest.mark.parametrize("objective", ["ips", "dr"])
def test_learned_policy_beats_the_logging_policy_online(study, uniform_log, objective):
    learned = learn_from_log(uniform_log, study.catalog, objective=objective, steps=150)
    assert learned.name == f"learned_{objective}"
    logging_value, logging_se = study.true_value(EpsilonSoft(base=MostPopularAgent(), epsilon=1.0))
    learned_value, learned_se = study.true_value(learned)
    assert learned_value - logging_value > 5 * np.hypot(logging_se, learned_se)


def test_learning_is_deterministic_given_the_seed(study, uniform_log):
    first = learn_from_log(uniform_log, study.catalog, objective="ips", steps=20, seed=1)
    second = learn_from_log(uniform_log, study.catalog, objective="ips", steps=20, seed=1)
    np.testing.assert_array_equal(first.weights, second.weights)


def test_logs_without_candidates_or_propensities_are_refused(study, uniform_log):
    no_candidates = uniform_log.copy()
    no_candidates["candidate_ids"] = pd.Series([None] * len(no_candidates), dtype=object)
    with pytest.raises(ValueError, match=r"^column 'candidate_ids' is null at row 0; off-policy learning and "
                                         r"evaluation need each request's candidates: log with "
                                         r"experiment.log_candidates=true \(rollout\(..., log_candidates=True\)\)$"):
        learn_from_log(no_candidates, study.catalog)
    no_propensities = uniform_log.copy()
    no_propensities["position_propensity"] = pd.Series([None] * len(no_propensities), dtype=object)
    with pytest.raises(ValueError, match=r"^the log has no position_propensity; off-policy learning needs the "
                                         r"logging policy's per-position propensities"):
        learn_from_log(no_propensities, study.catalog)
    with pytest.raises(ValueError, match=r"^objective='snips'; choose one of \('ips', 'dr'\)$"):
        learn_from_log(uniform_log, study.catalog, objective="snips")


def test_linear_scorer_checks_its_weights(study):
    scorer = LinearScorer(weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"^weights has shape \(3,\), but this catalog's item features need \(17,\): "
                                         r"16 catalog features \+ popularity$"):
        scorer.setup(study.env(2), seed=0)
