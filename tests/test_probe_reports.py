"""``recoworld fidelity`` on the command line: flags refused before any work, with the
value and the fix; the report folder written whole or not at all; the same seed, the same
metrics.json."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from recoworld.apps.cli import main as cli_main
from recoworld.apps.fidelity import page
from recoworld.apps.fidelity.page import write_report

from small_world_report import evaluated

SMALL = ["--agents", "", "--splits", "", "--no-sessions", "--quiet"]


def _usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fidelity", *argv])
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


#: The names the refit of the small world (conftest.small_world) imports.
IMPORTS = ("calibrate() and CalibrationConfig from recoworld.apps.calibrate, ChoiceFitConfig from "
           "recoworld.calibration.choice, load_interactions from recoworld.data.interactions")


def _python_refit(log, out: str) -> str:
    """The refit that the small world, fitted in Python with settings `recoworld calibrate` has no flags for, names."""
    return ("in Python, as `recoworld calibrate` has no flag for the fit's settings choice, leave_steps, leave_users: "
            "`calibrate(CalibrationConfig(choice=ChoiceFitConfig(dim=6, l2=0.03), leave_steps=20, leave_users=40), "
            f"data=load_interactions({str(log)!r})).save({out}, replace=True)`")


@pytest.fixture(scope="module")
def world_dir(small_world, tmp_path_factory):
    """The small world saved with its data as a log file it can be read again from."""
    world, data = small_world
    folder = tmp_path_factory.mktemp("fidelity")
    log = folder / "log.csv"
    data.ratings.rename(columns={"user_id": "user", "item_id": "item"}).to_csv(log, index=False)
    meta = {**world.meta, "data": {**world.meta.get("data", {}), "source": {"kind": "interactions",
                                                                            "data": str(log)}}}
    return replace(world, meta=meta).save(folder / "world"), log


@pytest.mark.parametrize("argv, message", [
    (["--agents", "random"], "recoworld fidelity: error: --agents random: a ranking needs at least two agents, "
     "e.g. --agents random,most_popular,epsilon_greedy (or --agents '' for no ranking)"),
    (["--agents", "random,ucb1,random"], "recoworld fidelity: error: --agents names random more than once; name "
     "each agent once"),
    (["--agents", "random,lin_ucb"], "recoworld fidelity: error: --agents: no agent config 'lin_ucb' in "
     "conf/agent/; choose among"),
    (["--agents", "random,planning_oracle"], "recoworld fidelity: error: --agents: planning_oracle reads the "
     "simulator's private state, which held-out logs do not have; leave it out of the ranking"),
    (["--users", "statistical,llms"], "recoworld fidelity: error: --users statistical,llms: no user kind 'llms'; "
     "choose among statistical, hybrid, llm"),
    (["--users", "llm", "--llm", "backend"], "recoworld fidelity: error: --llm 'backend'; give KEY=VALUE, e.g. "
     "--llm backend=openai"),
    (["--users", "llm", "--llm", "=openai"], "recoworld fidelity: error: --llm '=openai'; give KEY=VALUE"),
    (["--users", "llm", "--llm", "modle=x"], "recoworld fidelity: error: --llm 'modle=x': LLMConfig has no field "
     "'modle'; valid: api_key,"),
    (["--users", "llm", "--llm", "max_concurrency=many"], "recoworld fidelity: error: --llm: "
     "llm.max_concurrency='many': must be an integer >= 1"),
    (["--llm", "backend=openai"], "recoworld fidelity: error: --llm 'backend=openai' sets the model of the LLM and "
     "hybrid users, but --users 'statistical' has none; add them, e.g. --users statistical,hybrid,llm"),
    (["--splits", "latest,random"], "recoworld fidelity: error: --splits ['random']; choose among latest, time, "
     "users"),
    (["--splits", "time,latest,time"], "recoworld fidelity: error: --splits time,latest,time names time more than "
     "once; name each split once"),
])
def test_bad_flags_are_refused_before_the_world_is_read(capsys, tmp_path, argv, message):
    # --world names a folder with no world: every flag above is refused before it is looked at.
    error = _usage_error(capsys, ["--world", str(tmp_path / "none"), "--out", str(tmp_path / "r"), *argv])
    assert error.startswith(message)
    assert not (tmp_path / "r").exists()


def test_llm_settings_are_read_as_their_fields_types():
    from recoworld.apps.fidelity.report import _settings

    assert _settings(["model=123", "max_concurrency=8", "timeout_s=2.5", "json_schema_strict=false",
                      "max_calls=none"]) == {"model": "123", "max_concurrency": 8, "timeout_s": 2.5,
                                            "json_schema_strict": False, "max_calls": None}


def test_out_must_be_new_or_empty(capsys, tmp_path, world_dir):
    world, _ = world_dir
    (tmp_path / "file").write_text("mine")
    assert _usage_error(capsys, ["--world", str(world), "--out", str(tmp_path / "file"), *SMALL]) == (
        f"recoworld fidelity: error: --out {tmp_path / 'file'} is a file; give a folder for the report")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.md").write_text("my last report")
    assert _usage_error(capsys, ["--world", str(world), "--out", str(tmp_path / "old"), *SMALL]) == (
        f"recoworld fidelity: error: --out {tmp_path / 'old'} already holds files (report.md); choose another "
        "--out or remove it")
    assert (tmp_path / "file").read_text() == "mine" and (tmp_path / "old" / "report.md").read_text() == \
        "my last report"


def test_llm_users_beyond_the_held_out_users_are_refused(capsys, tmp_path, world_dir):
    world, _ = world_dir
    error = _usage_error(capsys, ["--world", str(world), "--out", str(tmp_path / "r"), *SMALL, "--users",
                                  "statistical,hybrid", "--llm-users", "1000"])
    assert error.startswith("recoworld fidelity: error: --llm-users 1000: choose 1..")
    assert error.endswith(" (the users with held-out ratings)")


def test_a_world_whose_log_moved_says_where_it_was_and_how_to_refit(capsys, tmp_path, world_dir):
    world, log = world_dir
    moved = log.with_name("moved.csv")
    log.rename(moved)
    try:
        error = _usage_error(capsys, ["--world", str(world), "--out", str(tmp_path / "r"), *SMALL])
    finally:
        moved.rename(log)
    assert error == (f"recoworld fidelity: error: the world's data cannot be read again ({log}: no such interaction "
                     "log file); the report scores the world on the ratings it held out, so say where the log is "
                     "now (--data PATH, with --items and --user-table if it had them), put the file back where it "
                     f"was, or fit the world again on it (recoworld calibrate --data PATH --out {world} --force)")


def test_data_says_where_a_moved_log_is_and_is_checked_against_the_world(tmp_path, world_dir):
    """--data reads the moved log, the same held-out ratings as the world's; another log is
    refused by the world's fingerprint; --data for a world not fitted on a log is refused."""
    from recoworld.apps.fidelity.evaluation import held_out_split
    from recoworld.apps.fidelity.report import _source
    from recoworld.simulators.calibrated import CalibratedWorld

    folder, log = world_dir
    world = CalibratedWorld.load(folder)
    moved = tmp_path / "moved.csv"
    moved.write_bytes(log.read_bytes())
    data, split = held_out_split(world, _source(world, folder, moved))
    assert len(split.test) > 0
    other = tmp_path / "other.csv"
    lines = log.read_text().splitlines()
    other.write_text("\n".join(lines[:-40]) + "\n")  # the last 40 interactions left out
    with pytest.raises(ValueError, match="the held-out ratings differ from those the world was calibrated without") as error:
        held_out_split(world, _source(world, folder, other))
    # the fix fits the world again from the log given (a bare `recoworld calibrate --force` fits MovieLens-100K), with
    # the settings it was fitted with, which `recoworld calibrate` has no flags for (it would fit another world)
    assert str(error.value).endswith(f"fit the world again, {_python_refit(other, 'FOLDER')} (FOLDER: this world's; "
                                     f"{IMPORTS})")
    movielens = replace(world, meta={**world.meta, "data": {"source": {"kind": "movielens-100k"}}})
    with pytest.raises(ValueError, match=f"--data {moved}: this world was not calibrated on an interaction log"):
        _source(movielens, None, moved)


def test_a_world_of_another_version_is_refused_with_the_refit(capsys, tmp_path, world_dir):
    world, log = world_dir
    old = tmp_path / "old-world"
    old.mkdir()
    (old / "tensors.pt").write_bytes((world / "tensors.pt").read_bytes())
    document = json.loads((world / "world.json").read_text())
    (old / "world.json").write_text(json.dumps({**document, "artifact_version": 1}))
    error = _usage_error(capsys, ["--world", str(old), "--out", str(tmp_path / "r"), *SMALL])
    assert error.startswith(f"recoworld fidelity: error: {old} holds artifact version 1, this RecoWorld reads "
                            "version ")
    # the log's world is fitted again from the log, never from MovieLens-100K (a bare --force)
    assert error.endswith(f"with the log it was fitted on, or fit it again in place: "
                          f"{_python_refit(log, repr(str(old)))} ({IMPORTS})")


def test_same_seed_same_metrics_and_the_report_is_whole(tmp_path, world_dir, capsys):
    world, _ = world_dir
    for name in ("a", "b"):
        assert cli_main(["fidelity", "--world", str(world), "--out", str(tmp_path / name), *SMALL]) == 0
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"], "no temporary folder is left"


def test_an_interrupted_report_leaves_nothing(small_world, tmp_path, monkeypatch):
    world, _ = small_world
    results = evaluated(small_world)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(page, "plot_ratings", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(results, tmp_path / "report", world)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    # An undefined number (a tau of agents that tie) is JSON's null, not the NaN no strict reader takes.
    results["policy_ranking"] = None
    results["models"]["calibrated user"]["auc"] = float("nan")
    write_report(results, tmp_path / "report", world)
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["models"]["calibrated user"]["auc"] is None
