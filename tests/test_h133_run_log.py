"""A folder without a status.json is read as read_log reads it: parts in subfolders count as
a log, and only a folder with no part at all is named as a run that stopped before it began."""

import re

import pandas as pd
import pytest

from recoworld import Catalog
from recoworld.agents.baselines import RandomAgent
from recoworld.apps.run.run_log import read_run_log
from recoworld.envs.rollout import rollout
from recoworld.envs.slate import SlateVectorEnv
from recoworld.logs import EpisodeLog, LogSchemaError, read_log


def write_part(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    env = SlateVectorEnv(num_envs=2, catalog=Catalog.synthetic(30, n_genres=3, seed=0), slate_size=2,
                         num_candidates=5, max_steps=3)
    with EpisodeLog(path) as log:
        rollout(env, RandomAgent(), n_steps=3, seed=0, logger=log)


def test_a_folder_of_parts_in_subfolders_is_read_as_read_log_reads_it(tmp_path):
    write_part(tmp_path / "seed=0" / "part.parquet")
    write_part(tmp_path / "seed=1" / "part.parquet")
    run = read_run_log(tmp_path)
    assert run.note is None and len(run.log) == 2 * len(read_log(tmp_path / "seed=0" / "part.parquet")) > 0
    pd.testing.assert_frame_equal(run.log, read_log(tmp_path))


def test_a_folder_without_a_part_is_a_run_that_stopped_before_it_began(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "recoworld.log").write_text("")
    with pytest.raises(FileNotFoundError, match="^" + re.escape(
            f"{tmp_path} holds no status.json and no episodes/: its `recoworld run` stopped before the run began")):
        read_run_log(tmp_path)


def test_an_episodes_folder_without_a_part_says_so(tmp_path):
    (tmp_path / "episodes").mkdir()
    with pytest.raises(LogSchemaError, match="^" + re.escape(
            f"{tmp_path / 'episodes'} holds no part of an episodes log (no *.parquet file)")):
        read_run_log(tmp_path)
