"""``recoworld merge``: a sweep's runs in one table with intervals across seeds, the sweep
plot, the Hydra callback that merges at the end of a multirun, and the launcher configs."""

from __future__ import annotations

import json
import math
import os
import socket

import pandas as pd
import pytest
from omegaconf import OmegaConf

from recoworld.apps import cli
from recoworld.apps.merge_multirun import MergeSweep
from recoworld.apps.merge_runs import find_runs
from recoworld.apps.merge_writer import merge
from recoworld.metrics import mean_interval

TINY = ["world=synthetic", "env.num_envs=4", "env.num_candidates=20", "env.slate_size=4", "experiment.steps=4",
        "experiment.progress=false", "experiment.plots=false"]


def fake_run(directory, overrides, seeds, values, agents=("random",), segments=None, config=None):
    """A run directory as ``recoworld run`` leaves it: metrics.json and .hydra/overrides.yaml, and
    with ``config`` (the saved config) a status.json. ``segments``: name -> the values of its seeds."""
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))

    def agents_block(values):
        return {agent: {"seeds": list(seeds), "metrics": {
            "ctr": {"per_seed": [None if v is None else v + k for v in values]},
            "return_per_episode": {"per_seed": [None if v is None else 10 * v + k for v in values]},
        }} for k, agent in enumerate(agents)}

    metrics = {"agents": agents_block(values)}
    if segments is not None:
        metrics["segments"] = {name: {"population": {"age": [0, 24]}, "agents": agents_block(segment_values)}
                               for name, segment_values in segments.items()}
    (directory / "metrics.json").write_text(json.dumps(metrics))
    if config is not None:
        _status(directory, "complete", config=config)


def test_runs_differing_only_by_seeds_are_pooled_into_one_interval(tmp_path):
    fake_run(tmp_path / "0", ["env.reward=clicks", "experiment.seeds=[0,1]"], [0, 1], [0.1, 0.2])
    fake_run(tmp_path / "1", ["env.reward=clicks", "experiment.seeds=[2]"], [2], [0.6])
    fake_run(tmp_path / "2", ["env.reward=mix", "experiment.seeds=[0,1]"], [0, 1], [0.3, None])
    table = merge([tmp_path])
    assert list(table["env.reward"]) == ["clicks", "mix"]
    clicks, mix = table.iloc[0], table.iloc[1]
    pooled = mean_interval([0.1, 0.2, 0.6])
    assert (clicks["seeds"], clicks["n_seeds"]) == ("0 1 2", 3)
    assert clicks["ctr"] == pytest.approx(pooled.mean)
    assert (clicks["ctr_ci_low"], clicks["ctr_ci_high"]) == pytest.approx((pooled.low, pooled.high))
    assert mix["ctr"] == pytest.approx(0.3) and math.isnan(mix["ctr_ci_low"])  # one defined seed: no interval
    written = pd.read_csv(tmp_path / "sweep.csv")
    assert list(written.columns[:5]) == ["env.reward", "agent", "seeds", "n_seeds", "runs"]
    assert written["return_per_episode"].tolist() == pytest.approx([3.0, 3.0])
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_a_metric_defined_on_some_seeds_says_on_how_many(tmp_path, capsys):
    fake_run(tmp_path / "0", ["env.reward=mix", "experiment.seeds=[0,1]"], [0, 1], [0.3, None])
    fake_run(tmp_path / "1", ["env.reward=mix", "experiment.seeds=[2]"], [2], [0.5])
    assert cli.main(["merge", str(tmp_path), "--metric", "ctr"]) == 0
    row = pd.read_csv(tmp_path / "sweep.csv").iloc[0]
    # The mean and its interval rest on seeds 0 and 2: the table says so, as a run's own does.
    assert (row["n_seeds"], row["ctr_n_seeds"], row["ctr"]) == (3, 2, pytest.approx(0.4))
    err = capsys.readouterr().err
    assert "(2 of 3 seeds)" in err and "recoworld merge: 2 runs, 1 row -> " in err


def test_a_metrics_seed_count_is_no_setting_key(tmp_path, capsys):
    from recoworld.apps.merge_table import varying_keys

    # One setting, two agents: ctr defined on both seeds of oracle, on one seed of random.
    fake_run(tmp_path / "a", ["experiment.seeds=[0,1]"], [0, 1], [0.3, None], agents=("random",))
    fake_run(tmp_path / "b", ["experiment.seeds=[0,1]"], [0, 1], [0.3, 0.4], agents=("oracle",))
    table = merge([tmp_path], metric="ctr")
    assert table["ctr_n_seeds"].tolist() == [1, 2]
    assert varying_keys(table) == []  # nothing but the agent differs: sweep.png's x axis is the agents
    assert "ctr_n_seeds" not in capsys.readouterr().err


def test_a_metric_without_any_value_is_said_so(tmp_path, capsys):
    fake_run(tmp_path / "a", ["experiment.seeds=[0,1]"], [0, 1], [None, None])
    assert cli.main(["merge", str(tmp_path)]) == 0
    assert ("recoworld merge: --metric return_per_episode has no value in any row (e.g. return_per_episode, "
            "watch_time and session_length need experiment.steps >= env.max_steps), so sweep.png shows no "
            "point; give another --metric, e.g. --metric ctr") in " ".join(capsys.readouterr().err.split())


def test_a_seed_two_runs_share_counts_once_and_unfinished_jobs_are_named(tmp_path, capsys):
    fake_run(tmp_path / "a", ["experiment.seeds=[0,1]"], [0, 1], [0.1, 0.3], agents=("random", "oracle"))
    fake_run(tmp_path / "b", ["experiment.seeds=[1]"], [1], [0.9], agents=("random", "oracle"))
    (tmp_path / "c" / ".hydra").mkdir(parents=True)
    (tmp_path / "c" / "status.json").write_text("{}")
    runs, unfinished = find_runs([tmp_path])
    assert [r.name for r in runs] == ["a", "b"] and [u.name for u in unfinished] == ["c"]
    table = merge([tmp_path], out=tmp_path / "merged")
    assert table.set_index("agent")["ctr"].to_dict() == pytest.approx({"random": 0.2, "oracle": 1.2})
    err = capsys.readouterr().err
    assert f"{tmp_path / 'c'} has no metrics.json" in err
    assert "seed 1 of random" in err and "counted once" in err
    assert (tmp_path / "merged" / "sweep.csv").exists()


def test_the_command_names_what_is_wrong(tmp_path, capsys):
    assert cli.main(["merge", str(tmp_path / "nowhere")]) == 1
    assert "is not a directory; give the sweep directory" in capsys.readouterr().err
    assert cli.main(["merge", str(tmp_path)]) == 1
    assert f"no run with a metrics.json under {tmp_path}" in capsys.readouterr().err
    fake_run(tmp_path / "0", [], [0, 1], [0.1, 0.2])
    assert cli.main(["merge", str(tmp_path), "--metric", "clicks"]) == 1
    assert "--metric 'clicks' is not in the runs' metrics; choose one of ['ctr', 'return_per_episode']" in \
        capsys.readouterr().err


def test_a_multirun_ends_with_its_sweep_merged(tmp_path):
    sweep = tmp_path / "sweep"
    assert cli.main(["run", "--multirun", *TINY, "agent=random", "experiment.seeds=[0],[1]",
                     f"hydra.sweep.dir={sweep}"]) == 0
    table = pd.read_csv(sweep / "sweep.csv")
    assert table[["agent", "seeds", "n_seeds"]].values.tolist() == [["random", "0 1", 2]]
    per_seed = [json.loads((sweep / str(i) / "metrics.json").read_text())["agents"]["random"]["metrics"]["ctr"]
                ["mean"] for i in (0, 1)]
    assert table["ctr"].iloc[0] == pytest.approx(sum(per_seed) / 2)


def test_the_callback_logs_instead_of_failing_a_sweep_whose_jobs_all_failed(tmp_path, caplog):
    MergeSweep().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert f"no run with a metrics.json under {tmp_path}" in caplog.text


@pytest.mark.filterwarnings("error")  # no schema matched by name: the configs extend the plugins'
@pytest.mark.parametrize("launcher, target, address", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", None),
    ("ray", "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", None),
    ("ray_cluster", "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", "auto"),
])
def test_launcher_configs_compose_and_name_the_plugins(launcher, target, address):
    from hydra import compose, initialize_config_module

    pytest.importorskip(target.rsplit(".", 2)[0])  # the plugins come with recoworld[ray]
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    assert cfg.hydra.callbacks.merge_sweep._target_ == "recoworld.apps.merge_multirun.MergeSweep"
    if address is not None:
        assert (cfg.hydra.launcher.ray.init.address, cfg.hydra.launcher.ray.remote.num_cpus) == (address, 1)
        # The launcher sets a default object store unless the key is there; joining a
        # running cluster, Ray refuses one ("object_store_memory must not be provided").
        init = cfg.hydra.launcher.ray.init
        assert "object_store_memory" in init and init.object_store_memory is None


def test_a_run_reached_twice_counts_once(tmp_path, capsys):
    fake_run(tmp_path / "sweep" / "0", ["experiment.seeds=[0,1]"], [0, 1], [0.1, 0.3])
    sweep = tmp_path / "sweep"
    runs, _ = find_runs([sweep, f"{sweep}/", sweep / "0"])
    assert runs == [sweep / "0"]
    merge([sweep, sweep], out=tmp_path / "merged")
    err = capsys.readouterr().err
    assert "counted once" not in err and "recoworld merge: 1 run, 1 row" in err


def test_a_bad_metric_or_out_leaves_the_previous_merge_whole(tmp_path, capsys):
    fake_run(tmp_path / "0", [], [0, 1], [0.1, 0.2])
    merge([tmp_path])
    before = (tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()
    fake_run(tmp_path / "1", ["env.reward=mix"], [0, 1], [0.5, 0.6])
    assert cli.main(["merge", str(tmp_path), "--metric", "clicks"]) == 1
    assert "--metric 'clicks' is not in the runs' metrics" in capsys.readouterr().err
    assert ((tmp_path / "sweep.csv").read_bytes(), (tmp_path / "sweep.png").read_bytes()) == before
    (tmp_path / "taken").write_text("notes")
    assert cli.main(["merge", str(tmp_path), "--out", str(tmp_path / "taken")]) == 1
    assert f"--out {tmp_path / 'taken'} is a file, not a directory; give a directory" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".sweep.csv.lock", "0", "1", "sweep.csv", "sweep.png", "taken"]


def _status(directory, state, **fields):
    """A job's status.json in the form recoworld run writes it (only what merge reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    status = {"state": state, "error": None, "error_type": None, "pid": os.getpid(), "host": socket.gethostname(),
              "parts": {"planned": 1, "complete": [], "current": None}, **fields}
    (directory / "status.json").write_text(json.dumps(status))


def test_each_job_left_out_is_named_with_its_state_and_what_to_do(tmp_path, capsys):
    fake_run(tmp_path / "0", [], [0], [0.1])
    _status(tmp_path / "1", "failed", error="agent=random seed=1: WorkerCrashedError: the worker died",
            error_type="RolloutsFailed")
    _status(tmp_path / "2", "interrupted")
    _status(tmp_path / "3", "running", pid=2**22 + 1)  # above Linux's pid_max: a process that has ended
    _status(tmp_path / "4", "running", pid=os.getppid())  # a process that lives: still running
    _status(tmp_path / "5", "complete")  # its metrics.json removed since
    (tmp_path / "6").mkdir()
    (tmp_path / "6" / "status.json").write_text('{"state": "runn')  # damaged
    (tmp_path / "7" / ".hydra").mkdir(parents=True)  # stopped before its run began
    (tmp_path / "7" / ".hydra" / "overrides.yaml").write_text("[]")
    (tmp_path / "7" / "recoworld.log").write_text("[ERROR] - recoworld run: error: ...\n")
    merge([tmp_path])
    err = capsys.readouterr().err
    said = {line.split()[2]: line for line in err.splitlines() if "has no metrics.json, left out: " in line}
    assert sorted(said) == [str(tmp_path / str(j)) for j in range(1, 8)]
    assert ("the job failed (RolloutsFailed: agent=random seed=1: WorkerCrashedError: the worker died): 0 of 1 "
            "rollouts complete; fix that, then rerun its command with experiment.resume=true "
            f"hydra.run.dir={tmp_path / '1'} to finish it" in said[str(tmp_path / "1")])
    assert ("the job was interrupted: 0 of 1 rollouts complete; rerun its command with experiment.resume=true "
            f"hydra.run.dir={tmp_path / '2'} to finish it" in said[str(tmp_path / "2")])
    assert f"the job was killed (its status.json says running, but process {2**22 + 1} has ended)" in \
        said[str(tmp_path / "3")]
    assert "the job is still running" in said[str(tmp_path / "4")]
    assert "its status.json says complete, so the file was removed since; rerun its command with " \
           f"experiment.resume=true hydra.run.dir={tmp_path / '5'} to write it again" in said[str(tmp_path / "5")]
    assert "its status.json is damaged" in said[str(tmp_path / "6")]
    assert "the job stopped before its run began (no status.json; recoworld.log says why)" in said[str(tmp_path / "7")]
    assert "recoworld merge: 1 run, 1 row" in err


def test_a_damaged_or_foreign_metrics_json_is_named_and_left_out(tmp_path, capsys):
    fake_run(tmp_path / "0", [], [0, 1], [0.1, 0.3])
    fake_run(tmp_path / "1", [], [2], [0.5])
    (tmp_path / "1" / "metrics.json").write_text('{"agents": {"random": {"se')  # cut short
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "metrics.json").write_text('{"accuracy": 0.9}')  # another tool's
    fake_run(tmp_path / "2", [], [3], [0.7])
    (tmp_path / "2" / ".hydra" / "overrides.yaml").write_text("- [unclosed")
    table = merge([tmp_path])
    assert table[["seeds", "n_seeds"]].values.tolist() == [["0 1", 2]]
    err = capsys.readouterr().err
    assert f"recoworld merge: {tmp_path / '1' / 'metrics.json'} cannot be read (JSONDecodeError: " in err
    assert ("if its run is complete, rerun its command with experiment.resume=true "
            f"hydra.run.dir={tmp_path / '1'} to write it again: left out") in err
    assert (f"recoworld merge: {tmp_path / 'notes' / 'metrics.json'} is not a recoworld run's metrics.json (it has "
            "no 'agents' mapping): left out") in err
    assert f"recoworld merge: {tmp_path / '2' / '.hydra' / 'overrides.yaml'} cannot be read (" in err
    (tmp_path / "0" / "metrics.json").write_text("[]")
    assert cli.main(["merge", str(tmp_path)]) == 1
    assert f"error: no run with a metrics.json under {tmp_path} (4 left out, named above)" in capsys.readouterr().err


def test_overrides_that_change_no_result_do_not_split_a_setting(tmp_path):
    # A job finished with experiment.resume=true, or run by Ray, is the same setting as the others.
    fake_run(tmp_path / "0", ["env.reward=clicks", "experiment.seeds=[0]", "experiment.progress=false"], [0], [0.1])
    fake_run(tmp_path / "1", ["env.reward=clicks", "experiment.seeds=[1]", "experiment.progress=false",
                              "experiment.resume=true", "experiment.executor=ray", "llm.max_cost_usd=5"], [1], [0.3])
    table = merge([tmp_path])
    assert table[["env.reward", "seeds", "n_seeds"]].values.tolist() == [["clicks", "0 1", 2]]
    assert not [c for c in table.columns if c.startswith(("experiment.", "llm."))]


def test_a_run_lacking_a_metric_that_others_have_is_named(tmp_path, capsys):
    fake_run(tmp_path / "0", [], [0], [0.1])
    fake_run(tmp_path / "1", [], [1], [0.3])
    older = json.loads((tmp_path / "1" / "metrics.json").read_text())
    del older["agents"]["random"]["metrics"]["ctr"]
    (tmp_path / "1" / "metrics.json").write_text(json.dumps(older))
    table = merge([tmp_path])
    assert table["n_seeds"].tolist() == [2] and table["ctr"].tolist() == pytest.approx([0.1])
    assert (f"recoworld merge: {tmp_path / '1'} lacks ctr (a run of an older RecoWorld?): in the rows it is pooled "
            "into, their values are over the seeds of the setting's other runs only") in capsys.readouterr().err


def test_jobs_are_taken_in_the_order_of_their_numbers(tmp_path):
    for job, seed in ((2, 0), (10, 0), (11, 1)):
        fake_run(tmp_path / str(job), ["experiment.seeds=[0]"], [seed], [0.1 * job])
    runs, _ = find_runs([tmp_path])
    assert [r.name for r in runs] == ["2", "10", "11"]
    table = merge([tmp_path])  # seed 0 is in jobs 2 and 10: job 2's value counts
    assert table["ctr"].iloc[0] == pytest.approx((0.2 + 1.1) / 2)
    assert table["runs"].iloc[0] == "2;11"  # relative to sweep.csv's folder


def test_a_merge_that_cannot_write_is_an_error_of_the_command_and_a_log_line_of_the_sweep(tmp_path, capsys, caplog):
    fake_run(tmp_path / "0", [], [0], [0.1])
    (tmp_path / "sweep.csv").mkdir()  # in the way of the file
    assert cli.main(["merge", str(tmp_path)]) == 1
    assert "recoworld merge: error: [Errno 21] Is a directory: " in capsys.readouterr().err
    MergeSweep().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))  # no raise:
    assert f"recoworld merge {tmp_path}: IsADirectoryError: [Errno 21] Is a directory: " in caplog.text  # jobs stand
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sweep.csv.lock", "0", "sweep.csv"]  # no temporary left


def test_segment_metrics_are_merged_with_intervals_across_seeds(tmp_path, capsys):
    fake_run(tmp_path / "0", ["experiment.seeds=[0,1]"], [0, 1], [0.1, 0.2], segments={"young": [0.5, 0.7]})
    fake_run(tmp_path / "1", ["experiment.seeds=[2]"], [2], [0.6], segments={"young": [0.9]})
    table = merge([tmp_path])
    assert table[["segment", "agent", "seeds", "n_seeds"]].values.tolist() == [
        ["(all)", "random", "0 1 2", 3], ["young", "random", "0 1 2", 3]]
    young, pooled = table.iloc[1], mean_interval([0.5, 0.7, 0.9])
    assert (young["ctr"], young["ctr_ci_low"], young["ctr_ci_high"]) == pytest.approx(
        (pooled.mean, pooled.low, pooled.high))
    assert table.iloc[0]["ctr"] == pytest.approx(0.3)
    written = pd.read_csv(tmp_path / "sweep.csv")
    assert list(written.columns[:3]) == ["segment", "agent", "seeds"]
    assert "│ young   │ random │ 3" in capsys.readouterr().err


SAVED = {"world": {"name": "synthetic", "n_items": 200}, "env": {"reward": "clicks"},
         "simulator": {"config": {"leave_base": -3.0}},
         "agents": {"random": {"_target_": "recoworld.agents.RandomAgent"}},
         "experiment": {"seeds": [0], "steps": 6, "log_candidates": False, "segments": None}}


def saved(**changes):
    """:data:`SAVED` with ``changes`` (dotted key -> value)."""
    config = json.loads(json.dumps(SAVED))
    for key, value in changes.items():
        *parents, name = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[name] = value
    return config


def test_runs_of_the_same_overrides_that_ran_different_configs_are_separate_settings(tmp_path, capsys):
    # Two sweeps of env.reward=clicks, the second after conf/'s leave_base default changed.
    fake_run(tmp_path / "a" / "0", ["env.reward=clicks", "experiment.seeds=[0]"], [0], [0.1], config=saved())
    fake_run(tmp_path / "a" / "1", ["env.reward=clicks", "experiment.seeds=[1]"], [1], [0.3],
             config=saved(**{"experiment.seeds": [1]}))
    fake_run(tmp_path / "b" / "0", ["env.reward=clicks", "experiment.seeds=[0]"], [0], [0.9],
             config=saved(**{"simulator.config.leave_base": -2.0}))
    table = merge([tmp_path / "a", tmp_path / "b"], out=tmp_path)
    assert table[["env.reward", "simulator.config.leave_base", "seeds", "runs"]].values.tolist() == [
        ["clicks", "-3.0", "0 1", "a/0;a/1"], ["clicks", "-2.0", "0", "b/0"]]
    assert table["ctr"].tolist() == pytest.approx([0.2, 0.9])
    assert ("recoworld merge: runs with the same overrides ran different configs (their status.json) at "
            "simulator.config.leave_base: they are separate settings, told apart by those columns"
            ) in capsys.readouterr().err


def test_a_saved_config_splits_settings_only_where_results_may_differ(tmp_path, capsys):
    # Another agent in the lineup, other seeds, a result-neutral key: still one setting of random.
    fake_run(tmp_path / "0", [], [0], [0.1], config=saved())
    fake_run(tmp_path / "1", [], [1], [0.3], config=saved(**{
        "agents.oracle": {"_target_": "recoworld.agents.OracleAgent"}, "experiment.seeds": [1],
        "experiment.progress": False}))
    table = merge([tmp_path])
    assert table[["agent", "seeds", "n_seeds"]].values.tolist() == [["random", "0 1", 2]]
    assert list(table.columns[:2]) == ["agent", "seeds"]
    fake_run(tmp_path / "2", [], [2], [0.5], config=saved(**{"agents.random.fresh": True}))
    fake_run(tmp_path / "3", [], [3], [0.7])  # no status.json: an older RecoWorld's
    (tmp_path / "4").mkdir()
    fake_run(tmp_path / "4" / "run", [], [4], [0.2], config=saved())
    (tmp_path / "4" / "run" / "status.json").write_text('{"state": "compl')  # damaged
    table = merge([tmp_path])
    assert table[["agent.fresh", "seeds"]].values.tolist() == [
        ["(absent)", "0 1"], ["true", "2"], ["(unknown)", "3 4"]]
    assert (f"recoworld merge: {tmp_path / '4' / 'run' / 'status.json'} is damaged, so the config "
            f"{tmp_path / '4' / 'run'} ran is unknown: it is told apart from other runs by its overrides only"
            ) in capsys.readouterr().err


def test_the_runs_column_is_the_same_however_the_directories_were_typed(tmp_path, monkeypatch):
    for job in (0, 1):
        fake_run(tmp_path / "sweep" / str(job), [f"experiment.seeds=[{job}]"], [job], [0.1])
    monkeypatch.chdir(tmp_path)
    typed = [["sweep"], ["./sweep/"], [str(tmp_path / "sweep")], ["sweep/0", "sweep/../sweep/1"]]
    assert {merge(dirs, out="sweep")["runs"].iloc[0] for dirs in typed} == {"0;1"}
    outside = merge(["sweep"], out="merged")["runs"].iloc[0]
    assert outside == f"{(tmp_path / 'sweep' / '0').resolve()};{(tmp_path / 'sweep' / '1').resolve()}"


def test_the_console_table_shows_a_dash_for_no_value_and_the_mean_alone_for_one_seed():
    from rich.console import Console

    from recoworld.apps.merge_table import print_table

    nan = float("nan")
    table = pd.DataFrame({"agent": ["random", "most_popular", "oracle"], "n_seeds": [1, 1, 3],
                          "return_per_episode": [0.0, nan, 2.5], "return_per_episode_ci_low": [nan, nan, 2.0],
                          "return_per_episode_ci_high": [nan, nan, 3.0]})
    console = Console(record=True, width=200)
    print_table(table, "return_per_episode", console)
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip()
            for line in console.export_text().splitlines() if line.count("│") == 4}
    assert rows == {"random": "0", "most_popular": "-", "oracle": "2.5 [2, 3]"}
