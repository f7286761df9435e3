"""Bad inputs are refused at the boundary, and the error names the bad value.

Each case feeds one bad input — a config value, an env argument, a step the env cannot
take, a damaged data file, a plug-in simulator that breaks the Response contract, an OPE
input — and checks the message: the key or file, the value and what it must be. Categories
(see each section): config construction, env construction, env steps, data files, plug-in
simulators, OPE inputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recoworld
from recoworld.agents.bandits import UCB1, BernoulliTS, EpsilonGreedy
from recoworld.agents.baselines import MostPopularAgent
from recoworld.agents.linear import LinUCB
from recoworld.agents.logging_policies import SoftmaxPolicy
from recoworld.agents.neural_linear import NeuralLinearTS
from recoworld.catalog import Catalog
from recoworld.data.movielens import GENRES, load_movielens_100k
from recoworld.data.obd import load_open_bandit
from recoworld.envs.slate import SlateEnv, SlateVectorEnv
from recoworld.ope import IPS, BanditFeedback, SessionFeedback, SlateFeedback
from recoworld.rewards import RewardWeights
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.base import UserSimulator
from recoworld.simulators.checker import SimulatorCheckError
from recoworld.simulators.population import SyntheticPopulation

NAN = float("nan")


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(60, n_genres=5, seed=1)


# --- config construction -------------------------------------------------------------------

@pytest.mark.parametrize("build, message", [
    (lambda: StatisticalUserConfig(leave_base=NAN), "StatisticalUserConfig.leave_base=nan: must be a finite number"),
    (lambda: StatisticalUserConfig(continue_after_click=5.0),
     "StatisticalUserConfig.continue_after_click=5.0: must be in [0, 1]"),
    (lambda: StatisticalUserConfig(instruction_steps=2.5),
     "StatisticalUserConfig.instruction_steps=2.5: must be an integer in [1, 16777216]"),
    (lambda: StatisticalUserConfig(gap_days=0), "StatisticalUserConfig.gap_days=0: must be > 0"),
    # a shape whose Weibull draw leaves float32 (NaN gaps, or math.gamma's OverflowError)
    (lambda: StatisticalUserConfig(gap_shape=0.01), "StatisticalUserConfig.gap_shape=0.01: must be >= 0.05"),
    # more steps than the C kernel's float32 parameter holds exactly
    (lambda: StatisticalUserConfig(instruction_steps=2**24 + 1),
     "StatisticalUserConfig.instruction_steps=16777217: must be an integer in [1, 16777216]"),
    (lambda: StatisticalUserConfig(interest_weight="4"),
     "StatisticalUserConfig.interest_weight='4': must be a finite number"),
    (lambda: StatisticalUserConfig(return_mindset=float("inf")),
     "StatisticalUserConfig.return_mindset=inf: must be a finite number"),
    (lambda: SyntheticPopulation(patience_mean=1.0), "SyntheticPopulation.patience_mean=1.0: must be in (0, 1)"),
    (lambda: SyntheticPopulation(activity_spread=-0.5), "SyntheticPopulation.activity_spread=-0.5: must be >= 0"),
    (lambda: RewardWeights.parse({"clicks": NAN}), "reward.clicks=nan: must be a finite number"),
    (lambda: RewardWeights.parse({"watch_time": "lots"}), "reward.watch_time='lots': must be a finite number"),
    (lambda: UCB1(c=-1), "UCB1.c=-1: must be >= 0"),
    (lambda: BernoulliTS(prior_clicks=0), "BernoulliTS.prior_clicks=0: must be > 0"),
    (lambda: EpsilonGreedy(epsilon=NAN), "EpsilonGreedy.epsilon=nan: must be a finite number in [0, 1]"),
    (lambda: LinUCB(l2=0.0), "LinUCB.l2=0.0: must be > 0"),
    (lambda: NeuralLinearTS(batch_size=0), "NeuralLinearTS.batch_size=0: must be an integer >= 1"),
    (lambda: SoftmaxPolicy(base=MostPopularAgent(), propensity_samples=0),
     "SoftmaxPolicy.propensity_samples=0: must be an integer >= 1"),
    (lambda: BernoulliTS(per_slot="yes"), "BernoulliTS.per_slot='yes': must be True or False"),
])
def test_config_values_are_checked_when_built(build, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build()


@pytest.mark.parametrize("override, message", [
    ("simulator.config.leave_base=nan", "StatisticalUserConfig.leave_base=nan: must be a finite number"),
    ("simulator.population.patience_mean=1.5", "SyntheticPopulation.patience_mean=1.5: must be in (0, 1)"),
])
def test_hydra_overrides_fail_when_the_simulator_is_instantiated(override, message):
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from recoworld.conf.schema import register_schemas

    register_schemas()
    with initialize_config_module("recoworld.conf", version_base=None):
        cfg = compose("config", overrides=["world=synthetic", "simulator=statistical", override])
    with pytest.raises(Exception, match=re.escape(message)):
        instantiate(cfg.simulator, _partial_=True, _convert_="object")


# --- env construction ----------------------------------------------------------------------

@pytest.mark.parametrize("build, message", [
    (lambda c: SlateEnv(catalog=c, slate_size="5"), "slate_size='5': must be an integer >= 1"),
    (lambda c: SlateEnv(catalog=c, num_candidates=50.0), "num_candidates=50.0: must be an integer >= 1"),
    (lambda c: SlateVectorEnv(num_envs=0, catalog=c), "num_envs=0: must be an integer >= 1"),
    (lambda c: SlateVectorEnv(num_envs=2.5, catalog=c), "num_envs=2.5: must be an integer >= 1"),
    (lambda c: SlateEnv(catalog=c, max_steps=0), "max_steps=0: must be an integer >= 1"),
    (lambda c: SlateEnv(catalog=c, history_length=True), "history_length=True: must be an integer >= 1"),
    (lambda c: SlateEnv(catalog=c, candidate_features="yes"), "candidate_features='yes': must be True or False"),
    (lambda c: SlateEnv(catalog=c, reward={"clicks": NAN}), "reward.clicks=nan: must be a finite number"),
    (lambda c: SlateEnv(catalog=c, simulator_config={"voice_probability": 1.5}),
     "StatisticalUserConfig.voice_probability=1.5: must be in [0, 1]"),
])
def test_env_arguments_are_named(catalog, build, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build(catalog)


# --- env steps -----------------------------------------------------------------------------

def _churning_env(catalog) -> SlateEnv:
    # Users who leave at once and never return: the first step churns.
    return SlateEnv(catalog=catalog, slate_size=3, num_candidates=10,
                    simulator_config={"leave_base": 20.0, "return_base": -20.0, "voice_probability": 0.0})


def _step_after_churn(catalog):
    env = _churning_env(catalog)
    env.reset(seed=0)
    assert env.step(np.arange(3))[2] is True  # terminated
    env.step(np.arange(3))


def _step_past_truncation(catalog):
    env = SlateEnv(catalog=catalog, slate_size=3, num_candidates=10, max_steps=1,
                   simulator_config={"leave_base": -20.0})
    env.reset(seed=0)
    assert env.step(np.arange(3))[3] is True  # truncated
    env.step(np.arange(3))


def _vector_reset(catalog, seed):
    SlateVectorEnv(num_envs=2, catalog=catalog).reset(seed=seed)


@pytest.mark.parametrize("act, error, message", [
    (_step_after_churn, RuntimeError,
     "the episode has ended (terminated: the user churned); call env.reset() before step()"),
    (_step_past_truncation, RuntimeError,
     "the episode has ended (truncated after max_steps=1 steps); call env.reset() before step()"),
    (lambda c: SlateEnv(catalog=c).step(np.arange(10)), RuntimeError, "call reset() before step()"),
    (lambda c: _vector_reset(c, [0, -3]), ValueError, "seed[1]=-3: must be an integer >= 0"),
    (lambda c: _vector_reset(c, 2.5), ValueError, "seed=2.5: must be an integer >= 0"),
    (lambda c: StatisticalUsers(c).reset(2, seed=-1), ValueError, "seed=-1: must be an integer >= 0"),
    (lambda c: StatisticalUsers(c).reset(2, seed=[1, 2.5]), ValueError,
     "seed=[1, 2.5]: must be an integer >= 0 or a sequence of them, one per user"),
    (lambda c: SlateEnv(catalog=c).reset(seed=-1), ValueError, "seed=-1: must be an integer >= 0"),
])
def test_steps_the_env_cannot_take_say_what_to_do(catalog, act, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        act(catalog)


def test_a_reset_after_the_end_lets_the_single_env_go_on(catalog):
    env = _churning_env(catalog)
    env.reset(seed=0)
    env.step(np.arange(3))
    env.reset()
    assert env.step(np.arange(3))[2] is True


# --- plug-in simulators --------------------------------------------------------------------

class Tampered(UserSimulator):
    """Statistical users whose answers pass through ``tamper`` (a plug-in, for the env)."""

    def __init__(self, catalog, tamper=lambda r: r, probabilities=None):
        self.catalog = catalog
        self.inner = StatisticalUsers(catalog)
        self.tamper, self.probabilities = tamper, probabilities

    @property
    def n_users(self):
        return self.inner.n_users

    def reset(self, n_users, seed=None, users=None):
        self.inner.reset(n_users, seed=seed, users=users)

    def respond(self, slates):
        return self.tamper(self.inner.respond(slates))

    def click_probabilities(self, items):
        p = self.inner.click_probabilities(items)
        return p if self.probabilities is None else self.probabilities(p)


def _set(field, make):
    def tamper(response):
        setattr(response, field, make(getattr(response, field)))
        return response
    return tamper


def _nan_at_first(t):
    t = t.clone()
    t.view(-1)[0] = NAN
    return t


@pytest.mark.parametrize("tamper, problem", [
    (_set("watch_fraction", _nan_at_first), "Response.watch_fraction[0, 0] is nan; expected values in [0, 1]"),
    (_set("clicked", lambda t: t.float()), "Response.clicked has dtype torch.float32; expected torch.bool"),
    (_set("satisfaction", lambda t: t[:, None]), "Response.satisfaction has shape (2, 1); expected (2,)"),
    (_set("leave_hazard", lambda t: t + 1.5), "Response.leave_hazard[0] is"),
    (_set("rating", lambda t: torch.full_like(t, 7)), "Response.rating[0, 0] is 7; expected values in [0, 5]"),
    (_set("return_gap", lambda t: t - 1.0), "Response.return_gap[0] is -1; expected values >= 0"),
    (_set("compliance", lambda t: t.tolist()),
     "Response.compliance is a list; expected a real-valued tensor with values in [0, 1] of shape (2,)"),
    (_set("instruction_text", lambda t: t[:1]),
     "Response.instruction_text has 1 entries; expected a list (or a 1-D numpy object array) of 2 (None for users "
     "who said nothing)"),
    (lambda r: {"clicked": r.clicked}, "respond() returned a dict; return a recoworld.Response"),
])
def test_the_env_checks_a_plugin_simulators_response(catalog, tamper, problem):
    env = SlateVectorEnv(num_envs=2, simulator=Tampered(catalog, tamper), slate_size=3, num_candidates=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^Tampered\.respond\(\) broke the UserSimulator contract:\n  - "
                                         + re.escape(problem)) as err:
        env.step(np.tile(np.arange(3), (2, 1)))
    assert str(err.value).endswith("pass check_responses=False to the env to skip this check")


def test_the_response_check_can_be_turned_off(catalog):
    broken = _set("rating", lambda t: torch.full_like(t, 7))
    env = SlateVectorEnv(num_envs=2, simulator=Tampered(catalog, broken), slate_size=3, num_candidates=10,
                         check_responses=False)
    env.reset(seed=0)
    assert (env.step(np.tile(np.arange(3), (2, 1)))[4]["rating"] == 7).all()


def test_the_oracle_never_reads_nan_click_probabilities(catalog):
    simulator = Tampered(catalog, probabilities=_nan_at_first)
    env = SlateVectorEnv(num_envs=2, simulator=simulator, slate_size=3, num_candidates=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(
            "Tampered.click_probabilities() broke the UserSimulator contract:\n"
            "  - click_probabilities()[0, 0] is nan; expected values in [0, 1]")):
        env.click_probabilities()
    with pytest.raises(SimulatorCheckError, match=re.escape(
            "  - click_probabilities()[0, 0] is nan; expected values in [0, 1] (for slates of shape (4, 3) after reset)")):
        recoworld.check_simulator(simulator)


def test_check_simulator_lists_a_wrong_shaped_probability(catalog):
    simulator = Tampered(catalog, probabilities=lambda p: p[:, :1])
    with pytest.raises(SimulatorCheckError, match=re.escape(
            "  - click_probabilities() has shape (4, 1); expected (4, 3) (for slates of shape (4, 3) after reset)")):
        recoworld.check_simulator(simulator)


# --- data files ----------------------------------------------------------------------------

def _item_line(item: int, title: str, genres=("Comedy",)) -> str:
    flags = "|".join("1" if g in genres else "0" for g in GENRES)
    return f"{item}|{title}|01-Jan-1995||http://imdb|{flags}"


def _movielens(folder: Path, data: str | None = None, items: str | None = None) -> Path:
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n"
                                   if data is None else data)
    (folder / "u.item").write_text(items if items is not None else
                                   _item_line(1, "Toy Story (1995)") + "\n" + _item_line(2, "GoldenEye (1995)") + "\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


FIX = "the file is damaged: fetch it again (recoworld data fetch movielens-100k) or unzip ml-100k.zip again"


@pytest.mark.parametrize("data, items, message", [
    ("1\t1\t5\t0\n1\t2\t7\t0\n", None, "u.data: rating is '7' at line 2, but it must be a rating in 1..5 (whole stars)"),
    ("1\t1\t5\t0\n1\t2\t3\t0\n1\t1\t4\t9\n", None,
     "u.data: user 1 rates item 1 twice, at lines 1 and 3; MovieLens-100K holds one rating per user and item"),
    ("", None, "u.data holds no ratings"),
    ("1\t1\t5\t0\nabc\t2\t3\t0\n", None, "u.data: user_id is 'abc' at line 2, but it must be a user id (a whole number)"),
    ("1\t1\t5\t0\n1\t2\n", None, "u.data: line 2 has 2 fields separated by '\\t', expected 4 "
                                  "(user_id, item_id, rating, timestamp)"),
    ("1\t1\t4.5\t0\n", None, "u.data: rating is '4.5' at line 1, but it must be a rating in 1..5 (whole stars)"),
    (None, _item_line(1, "Toy Story (1995)") + "\n2|GoldenEye (1995)|01-Jan-1995||http://imdb|0|0|1\n",
     "u.item: line 2 has 8 fields separated by '|', expected 24 (item_id, title, release_date, video_release_date, "
     "imdb_url, ..., Western)"),
    (None, _item_line(1, "Toy Story (1995)").replace("|1|", "|2|") + "\n" + _item_line(2, "GoldenEye (1995)") + "\n",
     "u.item: Comedy is '2' at line 1, but it must be a genre flag, 0 or 1"),
])
def test_movielens_files_name_the_file_row_and_column(tmp_path, data, items, message):
    folder = _movielens(tmp_path / "ml-100k", data, items)
    with pytest.raises(ValueError, match=f"^{re.escape(str(folder) + '/' + message)}; {re.escape(FIX)}$"):
        load_movielens_100k(folder)


def test_recbole_ratings_without_rows_are_refused(tmp_path):
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    (tmp_path / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\t"
                                           "class:token_seq\n1\tToy Story\t1995\tComedy\n")
    (tmp_path / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\t"
                                           "zip_code:token\n1\t24\tM\ttechnician\t85711\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'ml-100k.inter'))} holds no ratings; "):
        load_movielens_100k(tmp_path)


def _obd(folder: Path, log_rows: list[str]) -> Path:
    campaign = folder / "random" / "all"
    campaign.mkdir(parents=True)
    (campaign / "item_context.csv").write_text(
        ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3\n0,0,-0.5,a,b,c\n1,1,0.5,d,e,f\n")
    header = (",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,user_feature_2,"
              "user_feature_3,user-item_affinity_0,user-item_affinity_1\n")
    (campaign / "all.csv").write_text(header + "".join(f"{j},{row}\n" for j, row in enumerate(log_rows)))
    return folder


GOOD_OBD_ROW = "2019-11-24 00:00:17.627+00:00,1,2,0,0.5,u0,u1,u2,u3,0.0,0.0"


@pytest.mark.parametrize("rows, message", [
    ([], "all.csv has its header but no rows; the file is damaged, fetch it again"),
    ([GOOD_OBD_ROW, GOOD_OBD_ROW.replace(",2,0,0.5,", ",2,2,0.5,")],
     "all.csv: click is '2' at row 1, but it must be 0 or 1; the file is damaged, fetch it again"),
    ([GOOD_OBD_ROW.replace(",2,0,0.5,", ",4,0,0.5,")],
     "all.csv: position is '4' at row 0, but it must be a position in 1..3; the file is damaged, fetch it again"),
])
def test_obd_files_name_the_file_row_and_column(tmp_path, rows, message):
    folder = _obd(tmp_path / "obd", rows)
    with pytest.raises(ValueError, match=f"^{re.escape(str(folder / 'random' / 'all') + '/' + message)}$"):
        load_open_bandit("random", "all", folder)


def test_the_small_files_the_cases_damage_load_when_intact(tmp_path):
    ml = load_movielens_100k(_movielens(tmp_path / "ml-100k"))
    assert ml.ratings["rating"].tolist() == [5, 3, 4] and ml.items["genres"].tolist() == [["Comedy"], ["Comedy"]]
    assert load_open_bandit("random", "all", _obd(tmp_path / "obd", [GOOD_OBD_ROW])).log["position"].tolist() == [1]


def _items(**columns) -> pd.DataFrame:
    return pd.DataFrame({"title": ["A", "B"], "genres": ["Drama", "Comedy"], **columns})


@pytest.mark.parametrize("df, features, message", [
    (_items(quality=[1.0, NAN]), "features", "quality of row 1 is nan; it must be a finite number"),
    (_items(popularity=[3, "many"]), "features", "popularity of row 1 is 'many'; it must be finite and >= 0"),
    (_items(features=[[1.0, 0.0], [NAN, 1.0]]), "features",
     "row 1 of column 'features' holds nan at dimension 0; features must be finite numbers"),
    (_items(features=[[1.0, 0.0], [1.0]]), "features",
     "row 1 of column 'features' is [1.0]; every row must be a vector of 2 numbers"),
    (_items(f0=[0.5, None]), ["f0"], "f0 of row 1 is nan; it must be a finite number"),
    (pd.DataFrame({"title": ["A", "B"], "genres": ["Drama", None]}), "features",
     "row 1 of column 'genres' is nan; give a list of genre names or a '|'-separated string"),
])
def test_catalog_from_dataframe_names_the_bad_cell(df, features, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Catalog.from_dataframe(df, features=features)


# --- OPE inputs ----------------------------------------------------------------------------

LOGGED = dict(action=np.array([0, 1, 2, 1]), reward=np.array([1.0, 0.0, 1.0, 0.5]), pscore=np.full(4, 0.25))


@pytest.mark.parametrize("act, error, message", [
    (lambda: BanditFeedback(**{**LOGGED, "reward": np.array([1.0, np.inf, 0.0, 0.0])}), ValueError,
     "reward[1] is inf; drop or impute rounds with missing rewards before estimating"),
    (lambda: BanditFeedback(**{**LOGGED, "pscore": np.array([0.2, NAN, 0.5, 0.5])}), ValueError,
     "pscore[1] is nan; log the probability with which the logging policy chose the action"),
    (lambda: BanditFeedback(**{**LOGGED, "position": np.array([0, -1, 0, 0])}), ValueError,
     "position[1] = -1, but positions start at 0"),
    (lambda: BanditFeedback(**{**LOGGED, "action": None}), TypeError, "action is None; pass an array"),
    (lambda: IPS(max_weight=NAN), ValueError, "max_weight = nan, but it must lie in (0, inf]"),
    (lambda: IPS().estimate_policy_value(BanditFeedback(**LOGGED), np.full((4, 3), NAN)), ValueError,
     "action_dist[0, 0, 0] is nan; the evaluation policy must give every action a finite probability"),
    (lambda: SlateFeedback(reward=np.array([[1.0, NAN], [0.0, 0.0]]), pscore=np.array([0.5, 0.5])), ValueError,
     "reward[0, 1] is nan; drop or impute rounds with missing rewards before estimating"),
    (lambda: SessionFeedback(reward=np.zeros((2, 2)), pscore=np.array([[0.5, 0.5]])), ValueError,
     "pscore has shape (1, 2), but (n_trajectories, horizon) = (2, 2) was expected"),
])
def test_ope_inputs_name_the_bad_entry(act, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        act()
