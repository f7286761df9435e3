"""A run's episode log as Minari episodes (``minari.EpisodeBuffer``): the observations
rebuilt from the log, and the words of the users who spoke. :mod:`.minari_dataset`'s
docstring gives the encoding; :func:`episode_buffers` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recoworld.logs import list_column

#: Clicked items kept in ``history_items`` (the Slate env's default ``history_length``).
HISTORY = 10
#: What identifies a user episode in the log; the export orders episodes by it.
EPISODE_KEYS = ["agent", "seed", "user", "episode"]
#: Log columns of what users said, one string per step, exported in ``infos`` when the log holds any.
SPOKEN = ("instruction_text", "mindset_text")
#: Log column of what users said about each item, a string per position of the slate.
REASONS = "item_reasons"


def observation_space(history: int):
    """The observations' ``Dict`` space, with ``history`` clicked items in ``history_items``."""
    from gymnasium import spaces

    return spaces.Dict({
        "history_items": spaces.Box(-1, np.iinfo(np.int64).max, (history,), dtype=np.int64),
        "session": spaces.Box(0, np.iinfo(np.int64).max, (2,), dtype=np.int64),
        "instruction_in_force": spaces.Discrete(2),
    })


@dataclass(frozen=True)
class Layout:
    """Where each user episode lies in the sorted log, and where its observations lie among
    all the episodes' observations (an episode has one more observation than steps)."""

    #: First row and the row after the last, per episode.
    starts: np.ndarray
    ends: np.ndarray
    #: Per observation: its episode, and the log rows before it (the row of the step it
    #: precedes; the row after the episode's last step for the episode's last observation).
    episode: np.ndarray
    rows_before: np.ndarray

    @classmethod
    def of(cls, log: pd.DataFrame) -> Layout:
        """The layout of ``log``, sorted by :data:`EPISODE_KEYS` and step."""
        number = log.groupby(EPISODE_KEYS, sort=False).ngroup().to_numpy()
        starts = np.flatnonzero(np.diff(number, prepend=-1))
        ends = np.append(starts[1:], len(log))
        episode = np.repeat(np.arange(len(starts)), ends - starts + 1)
        return cls(starts, ends, episode, np.arange(len(episode)) - episode)

    @property
    def after_last(self) -> np.ndarray:
        """Per observation: it is the one after its episode's last step."""
        return self.rows_before == self.ends[self.episode]

    @property
    def at_reset(self) -> np.ndarray:
        """Per observation: it is its episode's first (a reset's)."""
        return self.rows_before == self.starts[self.episode]


def episode_buffers(log: pd.DataFrame, history: int = HISTORY) -> list:
    """One ``minari.EpisodeBuffer`` per user episode of ``log``, ordered by agent, seed, user
    slot and episode (see :mod:`.minari_dataset` for the encoding).

    Each buffer's arrays are views of arrays built for the whole log at once: a large run
    has tens of thousands of episodes, and a selection per episode would cost far more than
    the episode's data.
    """
    from minari.data_collector import EpisodeBuffer

    log = log.sort_values([*EPISODE_KEYS, "step"], kind="stable").reset_index(drop=True)
    layout = Layout.of(log)
    slates = list_column(log, "slate").astype(np.int64)
    observations = _observations(log, slates, layout, history)
    words = _words(log, slates.shape[1], layout)
    rewards = log["reward"].to_numpy(np.float64)
    terminations = log["terminated"].to_numpy(bool)
    truncations = log["truncated"].to_numpy(bool).copy()
    last = layout.ends - 1
    truncations[last] |= ~terminations[last]  # the run's end cuts an episode still going
    seeds = log["episode_seed"].to_numpy()[layout.starts].tolist()
    buffers = []
    for number, (start, end) in enumerate(zip(layout.starts.tolist(), layout.ends.tolist())):
        steps, seen = slice(start, end), slice(start + number, end + number + 1)
        buffers.append(EpisodeBuffer(
            id=number, seed=int(seeds[number]), observations={k: v[seen] for k, v in observations.items()},
            actions=slates[steps], rewards=rewards[steps], terminations=terminations[steps],
            truncations=truncations[steps], infos=_episode_words(words, seen)))
    return buffers


def _observations(log: pd.DataFrame, slates: np.ndarray, layout: Layout, history: int) -> dict:
    """Every episode's observations, one after another (see :class:`Layout`)."""
    after_last = layout.after_last
    shown = layout.rows_before - after_last  # the row an observation reads: the last step's for the final one
    session = log["session"].to_numpy(np.int64)[shown]
    served = log["session_step"].to_numpy(np.int64)[shown]
    ended = log["left_session"].to_numpy(bool)[shown] & after_last
    in_force = log["instruction_in_force"].to_numpy(np.int64)[shown]
    # After the last step: in force if the instruction still held or was just voiced.
    voiced = log["instruction_text"].notna().to_numpy()[shown] & after_last
    return {
        "history_items": _history_items(log, slates, layout, history),
        "session": np.stack([session + ended, np.where(after_last, np.where(ended, 0, served + 1), served)], axis=1),
        "instruction_in_force": in_force | voiced,
    }


def _history_items(log: pd.DataFrame, slates: np.ndarray, layout: Layout, history: int) -> np.ndarray:
    """Per observation, the episode's last ``history`` clicked items before it, newest first
    and, within one slate, top first (as the env's ``history_items`` has them), ``-1`` padded."""
    clicked = list_column(log, "clicked").astype(bool)
    # Every click, row by row and each row's bottom to top: read backwards from a row's end,
    # the newest row comes first, top first.
    clicks = np.append(slates[:, ::-1][clicked[:, ::-1]], -1)
    clicks_before = np.concatenate([[0], np.cumsum(clicked.sum(axis=1))])  # clicks in the rows before a row
    newest = clicks_before[layout.rows_before][:, None] - 1 - np.arange(history)
    first = clicks_before[layout.starts][layout.episode][:, None]  # the episode's first click
    return np.where(newest >= first, clicks[np.maximum(newest, 0)], -1)


def _words(log: pd.DataFrame, slate_size: int, layout: Layout) -> dict[str, np.ndarray]:
    """Per kind of words the log holds, what the user said before each observation: ``""``
    at a reset, then the words of the step just taken (``""`` where the user said nothing).
    Strings per step are an object array; the reasons, one ``[observations, K]``."""
    spoken_at = np.maximum(layout.rows_before - 1, 0)
    silent = layout.at_reset
    words = {}
    for name in SPOKEN:
        if name in log and log[name].notna().any():
            said = log[name].fillna("").to_numpy(object)[spoken_at]
            words[name] = np.where(silent, "", said)
    if REASONS in log and log[REASONS].notna().any():
        reasons = np.full((len(log), slate_size), "", dtype=object)
        for row, given in log[REASONS].dropna().items():
            reasons[row] = ["" if reason is None else reason for reason in given]
        words[REASONS] = np.where(silent[:, None], "", reasons[spoken_at])
    return words


def _episode_words(words: dict[str, np.ndarray], seen: slice) -> dict | None:
    """An episode's ``infos``, as Minari's Arrow storage encodes and decodes them: strings per
    step as a list (a 1-D array would be written with a shape it cannot read back), the
    reasons as a 2-D string array."""
    if not words:
        return None
    return {name: said[seen].tolist() if said.ndim == 1 else said[seen].astype(str) for name, said in words.items()}
