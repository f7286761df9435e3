"""``RecoWorld/Instruct-v0``: the slate world in words, for language-model policies."""

from __future__ import annotations

import inspect
import json
import re
import string
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from recoworld.catalog import SyntheticTitles
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, check_number
from recoworld.envs.slate import _episode_end, _first, _single_reset_seed, _WorldFace
from recoworld.envs.world import SlateWorld, check_arguments, refuse_step_after_end
from recoworld.simulators import instructions as _phrasings
from recoworld.types import CANDIDATE_IDS
from recoworld.wording import one_line, plural

INVALID_ACTION_MODES = ("raise", "penalty")
#: The Slate env's arguments that the text env sets itself.
WORLD_ARGUMENTS_REFUSED = ("action_format", "candidate_features")
#: Stands in for characters outside the observation charset (see the manual).
REPLACEMENT = "\ufffd"


class InvalidAction(ValueError):
    """An action that is not a slate of this step's candidates (the message says why)."""


class InstructEnv(_WorldFace, gym.Env):
    """A single simulated user served by a policy that reads and writes text.

    ## Description

    The world of ``RecoWorld/Slate-v0`` (the same :class:`~recoworld.envs.world.SlateWorld`
    core, users and randomness) seen through text: each observation is a short prompt with
    the user's latest instruction in their own words ("Too much Comedy lately — show me
    something different, maybe some Sci-Fi."), a compact history of what they watched,
    and the candidate items with their ids, titles and genres. The policy answers with the
    ids of the items to show. For the same seed and the same slates, the users live exactly
    the trajectories of ``RecoWorld/Slate-v0``.

    ## Action Space

    ``Text(max_length=L, charset="0123456789[], ")``: the catalog ids of ``slate_size``
    distinct candidates, best first, as a JSON list (``"[431, 12, 7]"``) or separated by
    commas or spaces (``"431, 12, 7"``). ``step`` also takes a JSON object with a
    ``"slate"`` list, text in a Markdown code fence, and any sequence of integers. Nothing
    is guessed: an action that does not parse, has the wrong length, repeats an item or
    names an item that is not a candidate of this step is invalid (see ``invalid_action``).

    ## Observation Space

    ``Text(max_length=L, charset=...)``: the prompt, e.g.::

        User's latest instruction (1 step ago): "I'd like to see more Sci-Fi."
        Session 2, step 4.
        Recently watched (newest first):
        - 812 "Comedy #812" [Comedy]: watched 85%, liked
        Candidates (id "title" [genres]):
        - 431 "Drama #431" [Drama, Romance]
        ...
        Answer with the ids of 10 distinct candidates, best first, as a JSON list such as [431, 12, ...].

    The instruction shown is the latest one voiced in the current session (``none``
    otherwise). The charset is printable ASCII, Latin-1, general punctuation, and every
    character of the catalog's titles and genres; any other character of a custom
    simulator's free text is shown as U+FFFD. ``info`` carries the same facts in
    structured form: ``candidate_ids`` (``(C,)``), ``instruction`` (``{"more": [...],
    "less": [...], "novelty": -1|0|1}``: the latest one voiced in the session, as the prompt
    shows it, which can outlast the simulator's ``instruction_steps``; empty when none) and
    ``latest_instruction_text`` (the sentence the prompt shows, ``None`` when none);
    ``instruction_text``, as in ``RecoWorld/Slate-v0``, is the sentence voiced at this step.

    ## Rewards

    As ``RecoWorld/Slate-v0`` (``reward=``: a preset or weights of clicks, watch time,
    likes, retention and compliance). With ``invalid_action="penalty"`` an invalid
    action earns ``-invalid_penalty``.

    ## Starting State

    A new user drawn from the simulator's population, seeded by the episode seed, with an
    empty history and no instruction.

    ## Episode End

    Terminated when the user churns. Truncated after ``max_steps`` steps; with
    ``invalid_action="penalty"`` invalid actions count towards ``max_steps`` too, so an
    episode always ends. The env then needs ``env.reset()``: stepping it again raises
    ``RuntimeError`` saying so. As ``RecoWorld/Slate-v0``, ``reset`` takes one integer seed
    (numpy's too) and no ``options``: one it is given raises ``ValueError``.

    ## Arguments

    Those of ``RecoWorld/Slate-v0`` except ``action_format`` and ``candidate_features``,
    plus:

    - ``invalid_action`` (``"raise"``): ``"raise"`` raises :class:`InvalidAction` (a
      ``ValueError``) naming the problem; ``"penalty"`` leaves the user and the
      observation as they were, pays ``-invalid_penalty``, and reports it in ``info``:
      ``invalid_action`` (bool), ``action_error`` (the message) and ``invalid_actions``
      (the count of the episode, also present on valid steps).
    - ``invalid_penalty`` (``1.0``): a finite number >= 0.
    - ``history_shown`` (``5``): how many recent clicks the observation lists (>= 0).
    - ``max_instruction_chars`` (``500``): longer instructions are cut, with an ellipsis (>= 1).
    - ``render_mode``: ``None`` only; the observation is already the text to show, and
      ``render()`` returns ``None``, as ``RecoWorld/Slate-v0``'s does without a mode.

    Another argument raises ``ValueError`` naming it, with the one meant.

    ## Privileged channel

    As ``RecoWorld/Slate-v0``'s for one user: ``click_probabilities()`` ``(C,)``,
    ``expected_clicks(slate)`` of a slate of catalog ids ``(K,)``, ``reward_weights`` and
    ``training_env(...)``, for evaluation and privileged agents only.

    ## Checker

    ``gymnasium.utils.env_checker.check_env`` passes with ``invalid_action="penalty"``.
    With ``"raise"`` it cannot: it steps the env with ``action_space.sample()``, random
    strings of digits that are (almost) never a slate of the current candidates, and a
    ``Text`` space has no way to express "K distinct ids among this step's candidates".

    ## Vectorized environment

    None native: LLM policies batch their requests themselves (see
    :mod:`recoworld.agents.llm_agents`, which serve ``RecoWorld/Slate-v0``'s vector env);
    ``gymnasium.vector.SyncVectorEnv`` works for a few users.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": []}
    single = True

    def __init__(self, *, invalid_action: str = "raise", invalid_penalty: float = 1.0, history_shown: int = 5,
                 max_instruction_chars: int = 500, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}; InstructEnv has no render modes (its observation is "
                             "already the text): pass render_mode=None or leave it out")
        self.render_mode = None
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_action={invalid_action!r}; choose one of {INVALID_ACTION_MODES}")
        for name in WORLD_ARGUMENTS_REFUSED:
            if name in kwargs:
                raise ValueError(f"InstructEnv takes no {name}= ({name}={kwargs[name]!r}); its actions are item ids "
                                 f"in text: leave {name} out (RecoWorld/Slate-v0 takes it)")
        own = [name for name in inspect.signature(InstructEnv.__init__).parameters if name not in ("self", "kwargs")]
        check_arguments(kwargs, "RecoWorld/Instruct-v0", own, without=WORLD_ARGUMENTS_REFUSED,
                        manual="recoworld.envs.InstructEnv")
        # Checked before the world is built: a negative count would slice from the end.
        invalid_penalty = check_number("InstructEnv", "invalid_penalty", invalid_penalty, NON_NEGATIVE)
        history_shown = check_number("InstructEnv", "history_shown", history_shown, NON_NEGATIVE, integer=True)
        max_instruction_chars = check_number("InstructEnv", "max_instruction_chars", max_instruction_chars,
                                             AT_LEAST_ONE, integer=True)
        self.world = SlateWorld(1, candidate_features=False, **kwargs)
        self.invalid_action, self.invalid_penalty = invalid_action, invalid_penalty
        self.history_shown, self.max_instruction_chars = history_shown, max_instruction_chars
        catalog = self.catalog
        self._genre_names = list(catalog.genre_names)
        self._genres = catalog.genres.cpu().numpy()
        self._charset = _observation_charset(catalog)
        id_digits = len(str(catalog.n_items - 1))
        self.action_space = spaces.Text(self.slate_size * (id_digits + 2) + 2, charset="0123456789[], ")
        self.observation_space = spaces.Text(self._max_observation_chars(), charset=self._charset)

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = _single_reset_seed(seed, options, "InstructEnv")
        super().reset(seed=seed)
        self.world.reset_all(seed, self.np_random)
        self._instruction_text: str | None = None
        self._invalid = 0
        self._steps = 0
        self._ended = None
        info = _first(self.world.info(None, None))
        return self._observe(), self._info(info)

    def step(self, action):
        if not self.world.started:
            raise RuntimeError("call reset() before step()")
        refuse_step_after_end(self._ended)
        try:
            positions = self.candidate_positions(action)
        except InvalidAction as err:
            if self.invalid_action == "raise":
                raise
            return self._invalid_step(str(err))
        slates = self.world.slates_from_actions(positions, single=True)
        reward, terminated, truncated, response = self.world.step(slates)
        self._steps += 1  # counted once served: a step that raised (a simulator's timeout) can be retried
        info = _first(self.world.info(response, slates))
        if info["instruction_text"] is not None:
            self._instruction_text = str(info["instruction_text"])
        terminated = bool(terminated[0])
        truncated = not terminated and (bool(truncated[0]) or self._steps + self._invalid >= self.max_steps)
        self._ended = _episode_end(terminated, truncated, self.max_steps)
        return self._observe(), float(reward[0]), terminated, truncated, self._info(info)

    def render(self) -> None:
        """Nothing: the observation is already the text (Gymnasium's ``Env.render`` would raise
        a bare ``NotImplementedError``)."""
        return None

    @property
    def max_steps(self) -> int:
        return self.world.max_steps

    def candidate_ids(self) -> np.ndarray:
        """This step's candidates ``(C,)`` (catalog ids), as the observation lists them."""
        return self.world.candidates[0].cpu().numpy().copy()

    def candidate_positions(self, action) -> np.ndarray:
        """The candidate indices ``(K,)`` of ``action``; raises :class:`InvalidAction`."""
        ids = parse_slate(action)
        candidates = self.candidate_ids()
        return slate_positions(ids, candidates, self.slate_size)

    # -------------------------------------------------------------- helpers
    def _invalid_step(self, error: str):
        self._invalid += 1
        truncated = self._steps + self._invalid >= self.max_steps
        self._ended = _episode_end(False, truncated, self.max_steps)
        info = self._info({"episode_seed": self.world.episode_seed[0]})
        info.update(invalid_action=True, action_error=error)
        return self._observe(), -self.invalid_penalty, False, truncated, info

    def _info(self, info: dict) -> dict:
        info = dict(info)
        info.setdefault("invalid_action", False)
        info["invalid_actions"] = self._invalid
        info[CANDIDATE_IDS] = self.candidate_ids()
        current = self._instruction_is_current()
        info["instruction"] = (self.world.instruction.to_dict(0, self._genre_names) if current
                               else {"more": [], "less": [], "novelty": 0})
        info["latest_instruction_text"] = self._instruction_text if current else None
        return info

    def _instruction_is_current(self) -> bool:
        """An instruction was voiced in this session (the simulated users drop it when it ends)."""
        age, session_step = float(self.world.instruction_age[0]), float(self.world.session_step[0])
        return self._instruction_text is not None and 0 < age <= session_step

    def _observe(self) -> str:
        world = self.world
        lines = []
        if self._instruction_is_current():
            age = int(world.instruction_age[0])
            text = one_line(self._instruction_text)
            if len(text) > self.max_instruction_chars:
                text = text[: self.max_instruction_chars - 1] + "…"
            lines.append(f"User's latest instruction ({plural(age, 'step')} ago): \"{text}\"")
        else:
            lines.append("User's latest instruction: none.")
        lines.append(f"Session {int(world.session_index[0]) + 1}, step {int(world.session_step[0]) + 1}.")
        items = world.history_items[0].cpu().numpy()
        feedback = world.history_feedback[0].cpu().numpy()
        shown = [(int(i), f) for i, f in zip(items, feedback) if i >= 0][: self.history_shown]
        if shown:
            lines.append("Recently watched (newest first):")
            for item, (watched, liked) in shown:
                lines.append(f"- {self._describe(item)}: watched {round(100 * float(watched))}%"
                             + (", liked" if liked > 0 else ""))
        else:
            lines.append("Recently watched: nothing yet.")
        lines.append('Candidates (id "title" [genres]):')
        lines.extend(f"- {self._describe(int(i))}" for i in self.candidate_ids())
        lines.append(f"Answer with the ids of {self.slate_size} distinct candidates, best first, "
                     f"as a JSON list such as [{', '.join(str(int(i)) for i in self.candidate_ids()[:2])}, ...].")
        text = "\n".join(lines)
        return "".join(c if c in self._charset else REPLACEMENT for c in text)

    def _describe(self, item: int) -> str:
        genres = ", ".join(self._genre_names[g] for g in np.flatnonzero(self._genres[item]))
        return f'{item} "{one_line(self.catalog.titles[item])}" [{genres}]'

    def _max_observation_chars(self) -> int:
        catalog = self.catalog
        longest_item = (len(str(catalog.n_items)) + 6 + _longest_title(catalog)
                        + sum(len(g) + 2 for g in self._genre_names))
        fixed = 400 + self.max_instruction_chars + 12 * len(str(self.slate_size))
        return fixed + (self.history_shown + self.num_candidates) * (longest_item + 40)


# ---------------------------------------------------------------- parsing
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)
_PLAIN_IDS = re.compile(r"^\d+(?:\s*[,\s]\s*\d+)*$")


def parse_slate(action) -> list[int]:
    """Item ids from an action: a sequence of integers, or text holding a JSON list, a JSON
    object with a ``"slate"`` list, or ids separated by commas or spaces (optionally in a
    Markdown code fence). Raises :class:`InvalidAction`; nothing is guessed."""
    if isinstance(action, str):
        text = action.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
        if _PLAIN_IDS.match(text):
            return [int(t) for t in re.split(r"[,\s]+", text)]
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidAction(
                f"could not read a slate from {_clip(action)}; answer with item ids as a JSON list such as [3, 17, 5]"
            ) from None
        if isinstance(value, dict):
            if "slate" not in value:
                raise InvalidAction(f"the JSON object {_clip(action)} has no \"slate\" list of item ids")
            value = value["slate"]
        action = value
    if isinstance(action, (np.ndarray, torch.Tensor)):
        action = np.asarray(action).tolist()
    if not isinstance(action, (list, tuple)):
        raise InvalidAction(f"an action is a list of item ids or text; got {type(action).__name__} {_clip(action)}")
    ids = []
    for k, value in enumerate(action):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InvalidAction(f"slate[{k}] = {value!r} is not an item id (an integer)")
        ids.append(int(value))
    return ids


def slate_positions(ids: list[int], candidates: np.ndarray, slate_size: int) -> np.ndarray:
    """Candidate indices ``(K,)`` of the item ``ids``; raises :class:`InvalidAction` when the
    ids are not ``slate_size`` distinct candidates."""
    if len(ids) != slate_size:
        raise InvalidAction(f"the slate has {len(ids)} item(s); show exactly {slate_size} distinct candidates")
    index = {int(item): position for position, item in enumerate(candidates)}
    seen = set()
    for k, item in enumerate(ids):
        if item in seen:
            raise InvalidAction(f"slate[{k}] repeats item {item}; the {slate_size} items must be distinct")
        seen.add(item)
        if item not in index:
            listed = ", ".join(str(int(c)) for c in candidates[:12]) + (", ..." if len(candidates) > 12 else "")
            raise InvalidAction(f"slate[{k}] = {item} is not among this step's candidates ({listed})")
    return np.array([index[i] for i in ids], dtype=np.int64)


def _clip(value, n: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _title_chars(catalog) -> set[str]:
    if isinstance(catalog.titles, SyntheticTitles):  # "<genre> #<id>": no need to list a million titles
        return set("".join(catalog.genre_names)) | set(string.digits + " #")
    return set("".join(catalog.titles))


def _longest_title(catalog) -> int:
    if isinstance(catalog.titles, SyntheticTitles):
        return max(len(g) for g in catalog.genre_names) + 2 + len(str(catalog.n_items))
    return max(len(t) for t in catalog.titles)


def _observation_charset(catalog) -> str:
    chars = set(string.printable) - set("\t\r\x0b\x0c")
    chars |= {chr(c) for c in range(0xA0, 0x100)} | {chr(c) for c in range(0x2010, 0x2070)}
    chars |= {REPLACEMENT}
    chars |= set("".join(catalog.genre_names)) | _title_chars(catalog)
    for group in (_phrasings.LESS_AND_MORE, _phrasings.LESS_ONLY, _phrasings.MORE_ONLY,
                  *_phrasings.NOVELTY.values(), tuple(_phrasings.NOVELTY_ONLY.values())):
        for text in group:
            chars |= set(text)
    return "".join(sorted(chars))
