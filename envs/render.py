"""The single Slate env's ``render_mode="ansi"``: the current state as a text frame.

:class:`AnsiFrames` follows one user's episode from the observations and infos that the
env hands out (so it shows nothing the env did not show) and writes a frame such as::

    RecoWorld/Slate-v0 · user seed 3 · session 2 · step 7 (2 served in this session)
    satisfaction 0.54 · reward 1.00 · instruction in force (compliance 0.80)
    the user said: "Too much Comedy lately — show me something different."
    last slate:
       1. Comedy #12            Comedy           clicked, watched 90%, liked, rating 4
       2. Drama #40             Drama            seen
       3. Action #7             Action           not seen
    session ended: back in 2.3 days
    next candidates (50): Sci-Fi #3, Drama #88, ...
"""

from __future__ import annotations

import numpy as np

from recoworld.types import CANDIDATE_IDS
from recoworld.wording import one_line

#: Candidates named in a frame; the count says how many there are in all.
CANDIDATES_SHOWN = 5


class AnsiFrames:
    """The text frames of one single-user env (see the module docstring)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.start({}, {})

    def start(self, observation: dict, info: dict) -> None:
        """A new episode: its first observation and reset info."""
        self.candidates = _candidates(observation)
        self.user_seed = info.get("episode_seed")
        self.steps, self.session, self.session_step = 0, 0, 0
        self.last: dict | None = None  # the info of the last step
        self.reward: float | None = None
        self.spoken: str | None = None  # the latest instruction voiced

    def record(self, observation: dict, reward: float, info: dict) -> None:
        """The outcome of one step."""
        self.candidates, self.reward, self.last = _candidates(observation), reward, info
        self.steps += 1
        self.session_step += 1
        if info.get("instruction_text"):
            self.spoken = info["instruction_text"]
        if info.get("left_session") and not info.get("churned"):
            self.session, self.session_step = self.session + 1, 0

    def frame(self) -> str:
        """The current state as text (the env's ``render()`` in ``"ansi"`` mode)."""
        if self.user_seed is None:
            return "RecoWorld/Slate-v0 · not started: call env.reset()"
        lines = [f"RecoWorld/Slate-v0 · user seed {self.user_seed} · session {self.session + 1} · "
                 f"step {self.steps} ({self.session_step} served in this session)"]
        last = self.last
        if last is None:
            lines.append("no slate shown yet")
        else:
            force = (f"instruction in force (compliance {float(last['compliance']):.2f})"
                     if last["instruction_in_force"] else "no instruction in force")
            lines.append(f"satisfaction {float(last['satisfaction']):.2f} · reward {self.reward:.2f} · {force}")
            if last.get("instruction_text"):
                lines.append(f'the user said: "{last["instruction_text"]}"')
            elif self.spoken:
                lines.append(f'latest instruction: "{self.spoken}"')
            lines.append("last slate:")
            lines += [self._slate_row(last, k) for k in range(len(last["slate"]))]
            if last["churned"]:
                lines.append("the user churned: the episode has ended")
            elif last["left_session"]:
                lines.append(f"session ended: back in {float(last['return_gap']):.1f} days")
        candidates = self.candidates
        if len(candidates):
            named = ", ".join(one_line(self.catalog.titles[int(i)]) for i in candidates[:CANDIDATES_SHOWN])
            more = ", ..." if len(candidates) > CANDIDATES_SHOWN else ""
            lines.append(f"next candidates ({len(candidates)}): {named}{more}")
        return "\n".join(lines) + "\n"

    def _slate_row(self, last: dict, k: int) -> str:
        item = int(last["slate"][k])
        genres = ", ".join(self.catalog.genre_names[g] for g in self.catalog.genres[item].nonzero().flatten().tolist())
        if last["clicked"][k]:
            reaction = [f"clicked, watched {100 * float(last['watch_fraction'][k]):.0f}%"]
            reaction += ["liked"] if last["liked"][k] else []
            reaction += [f"rating {int(last['rating'][k])}"] if last["rating"][k] else []
            outcome = ", ".join(reaction)
        else:
            outcome = "seen" if last["examined"][k] else "not seen"
        return f"  {k + 1:>2}. {one_line(self.catalog.titles[item])[:28]:<28} {genres[:20]:<20} {outcome}"


def _candidates(observation: dict) -> np.ndarray:
    # A copy: the observation is the agent's, and the env may reuse its arrays once let go.
    return np.array(observation.get(CANDIDATE_IDS, []), dtype=np.int64)
