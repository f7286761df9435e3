"""Agents of a plug-in's ``conf/`` given as ``hydra.searchpath``: a lineup of
``experiment.agents`` finds them as ``agent=NAME`` does."""

import json

from recoworld.apps.run.app import main as run_app

TINY = ["world=synthetic", "world.n_items=200", "env.num_candidates=20", "env.slate_size=4", "env.num_envs=4",
        "experiment.steps=4", "experiment.seeds=[0]", "experiment.progress=false", "experiment.plots=false"]


def test_a_lineup_runs_an_agent_of_a_folder_on_hydras_search_path(tmp_path):
    plug = tmp_path / "plug"
    (plug / "agent").mkdir(parents=True)
    (plug / "agent" / "my_random.yaml").write_text("_target_: recoworld.agents.baselines.RandomAgent\n")
    search = f"hydra.searchpath=[file://{plug}]"
    run_app([*TINY, search, "agent=my_random", f"hydra.run.dir={tmp_path / 'alone'}"])
    run_app([*TINY, search, "experiment.agents=[most_popular,my_random]", f"hydra.run.dir={tmp_path / 'lineup'}"])
    metrics = json.loads((tmp_path / "lineup" / "metrics.json").read_text())
    assert set(metrics["agents"]) == {"most_popular", "my_random"}
    alone = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    timeless = [{k: v for k, v in m["agents"]["my_random"].items() if k != "seconds"} for m in (metrics, alone)]
    assert timeless[0] == timeless[1], "the same agent, the same seed"
