"""``recoworld ope evaluate`` lists the columns of a slate log's estimates in the order of a
single-action log's: ``estimator, estimate, lower, upper, interval, n_replicates``."""

from __future__ import annotations


def test_slate_and_bandit_rows_of_ope_evaluate_list_their_columns_in_one_order(tmp_path):
    import json

    import pandas as pd
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from recoworld.agents.baselines import MostPopularAgent
    from recoworld.agents.logging_policies import SoftmaxPolicy
    from recoworld.apps.cli import main as cli
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv
    from recoworld.logs import EpisodeLog
    from tests.test_ope_evaluate import xor_problem

    problem, _ = xor_problem(n=200)
    f = problem.feedback
    pd.DataFrame({"action": f.action, "reward": f.reward, "pscore": f.pscore}).to_csv(tmp_path / "log.csv", index=False)
    with initialize_config_module("recoworld.conf", version_base=None):
        catalog = instantiate(compose(config_name="config", overrides=["world=synthetic"]).world)
    env = SlateVectorEnv(num_envs=60, catalog=catalog, slate_size=2, num_candidates=5, max_steps=1)
    with EpisodeLog(tmp_path / "episodes.parquet") as log:
        rollout(env, SoftmaxPolicy(base=MostPopularAgent(), temperature=1.0), n_steps=1, seed=0, logger=log,
                log_candidates=True)
    quick = ["--sims", "2", "--refits", "2", "--bootstrap", "39"]
    columns = {}
    for kind, log, policy in (("bandit", "log.csv", "tests.test_ope_evaluate:UniformBandit"),
                              ("slate", "episodes.parquet", "most_popular")):
        assert cli(["ope", "evaluate", "--log", str(tmp_path / log), "--policy", policy, *quick,
                    *(["--world", "synthetic", "--truth-users", "200"] if kind == "slate" else []), "--out", str(tmp_path / kind)]) == 0
        report = json.loads((tmp_path / kind / "report.json").read_text())
        assert report["kind"] == kind
        # a note is added to some rows, by what the log shows: the columns' order is the rest's
        columns[kind] = ({tuple(key for key in row if key != "note") for row in report["estimates"]},
                         [key for key in pd.read_csv(tmp_path / kind / "estimates.csv").columns if key != "note"])
    # Before: the slate rows held n_replicates before interval.
    assert columns["slate"] == columns["bandit"]
    assert columns["slate"][1] == ["estimator", "estimate", "lower", "upper", "interval", "n_replicates"]
