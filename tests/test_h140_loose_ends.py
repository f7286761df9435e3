"""Four loose ends: a stop that arrives once a part's log has its name leaves the whole log
there; an agent factory returning no Recommender is named with the fix before the rollout
calls it; ``Catalog(titles=None)`` says what titles are; a folder where a world's tensors.pt
goes is a damaged world, with the command that fits it again."""

import json
import os
import shlex

import numpy as np
import pytest

from recoworld import Catalog
from recoworld.agents.baselines import RandomAgent
from recoworld.apps.run.app import main as run_app
from recoworld.envs.rollout import rollout
from recoworld.envs.slate import SlateVectorEnv
from recoworld.logs import EpisodeLog, read_log, temporary_path
from recoworld.simulators.calibrated import CalibratedWorld, UnreadableWorld
from run_support import TINY_RUN

TINY = [*TINY_RUN, "agent=random"]


# ---------------------------------------------------------------- 1. a stop after the log's rename

def test_a_stop_right_after_the_logs_rename_leaves_the_whole_log_at_its_name(tmp_path, monkeypatch):
    """``close`` raises the stop (Ctrl-C is never swallowed), but the rename was done: ``path``
    holds the whole log, as a reader of the folder sees it, and no temporary is left."""
    renamed = os.replace

    def stopped_after(source, target):
        renamed(source, target)
        raise KeyboardInterrupt

    path = tmp_path / "seed=0.parquet"
    env = SlateVectorEnv(num_envs=2, catalog=Catalog.synthetic(30, n_genres=3, seed=0), slate_size=2,
                         num_candidates=5, max_steps=3)
    monkeypatch.setattr(os, "replace", stopped_after)
    with pytest.raises(KeyboardInterrupt), EpisodeLog(path) as log:
        rollout(env, RandomAgent(), n_steps=3, seed=0, logger=log)
    monkeypatch.undo()
    assert sorted(tmp_path.iterdir()) == [path] and not temporary_path(path).exists()
    assert len(read_log(path)) == log.rows > 0
    log.close()  # closed: a second close has nothing to do
    assert len(read_log(path)) == log.rows


# ---------------------------------------------------------------- 2. an agent factory

class Ranker:
    """Has act, but is no Recommender."""

    closed = 0

    def act(self, obs):
        return np.argsort(obs.candidate_ids, axis=1)[:, :10]

    def close(self):
        Ranker.closed += 1


def make_ranker():
    return Ranker()


def forgot_to_return():
    Ranker()


@pytest.mark.parametrize("factory, returned", [("make_ranker", f"an instance of {__name__}.Ranker"),
                                               ("forgot_to_return", "None")])
def test_an_agent_factory_returning_no_recommender_is_named_with_the_fix(tmp_path, capsys, factory, returned):
    """It used to end in AttributeError: 'Ranker' object has no attribute 'setup', naming
    neither the factory nor the fix."""
    out = tmp_path / "run"
    Ranker.closed = 0
    with pytest.raises(SystemExit):
        run_app([*TINY, f"agent._target_={__name__}.{factory}", f"hydra.run.dir={out}"])
    message = (f"agent._target_={__name__}.{factory} returned {returned}, which is no recoworld.agents.Recommender, "
               "whose methods (setup, act, update) recoworld run calls: return an instance of a subclass of it "
               "(README: A new agent is a subclass of recoworld.agents.Recommender)")
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().endswith(f"recoworld run: error: {message}")
    assert json.loads((out / "status.json").read_text())["error"] == message
    assert Ranker.closed == (factory == "make_ranker")  # what it returned instead is closed, once


# ---------------------------------------------------------------- 3. titles=None

@pytest.mark.parametrize("titles", [None, 5])
def test_a_catalog_without_titles_says_what_titles_are(titles):
    base = Catalog.synthetic(5, n_genres=2, seed=0)
    with pytest.raises(ValueError) as error:  # was TypeError: object of type 'NoneType' has no len()
        Catalog(base.features, base.genres, base.genre_names, titles, base.popularity, base.quality)
    assert str(error.value) == (f"titles={titles!r} is not a sequence of item titles; give one title per item "
                                "(5 items), e.g. [f'item {i}' for i in range(5)]")


# ---------------------------------------------------------------- 4. a folder where tensors.pt goes

def test_a_folder_where_tensors_pt_goes_is_a_damaged_world_with_the_command_that_fits_it(log_world, tmp_path):
    """It used to raise a bare IsADirectoryError: [Errno 21] Is a directory."""
    world, log = log_world
    path = tmp_path / "my world"
    path.mkdir()
    (path / "world.json").write_text((world / "world.json").read_text())
    (path / "tensors.pt").mkdir()
    with pytest.raises(UnreadableWorld) as error:
        CalibratedWorld.load(path)
    assert str(error.value) == (
        f"{path / 'tensors.pt'} is a folder, not a file; the calibrated world at {path} is damaged: delete it to "
        f"recalibrate with the log it was fitted on, or fit it again in place: `recoworld calibrate --data "
        f"{shlex.quote(str(log.resolve()))} --users 30 --out {shlex.quote(str(path))} --force`")
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_folders_where_both_files_go_are_a_damaged_world(tmp_path):
    path = tmp_path / "world"
    (path / "world.json").mkdir(parents=True)
    (path / "tensors.pt").mkdir()
    with pytest.raises(UnreadableWorld, match=f"^{path}: world.json and tensors.pt are folders, not files; the "
                                              f"calibrated world at {path} is damaged: delete it to recalibrate "
                                              "with the data it was fitted from"):
        CalibratedWorld.load(path)
