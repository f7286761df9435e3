"""How statistical users voice an instruction: its structured form, its code and its sentence.

A user who speaks asks for less of its most satiated genre (if satiated beyond
``instruction_satiation``), more of the genre of best interest net of satiation, and
novelty or familiarity when its session's novelty propensity is strong (:func:`voice`).
The instruction's content and phrasing fold into one integer code (:func:`phrase_codes`,
the same code the C kernel gives), and a :class:`Phrasebook` turns codes into sentences
with :func:`~recoworld.simulators.instructions.render_instruction`.
"""

from __future__ import annotations

import numpy as np
import torch

from recoworld import rng
from recoworld.catalog import Catalog
from recoworld.kernels.users import ItemTables, UserState
from recoworld.types import Instruction
from recoworld.simulators.instructions import render_instruction

S_PHRASE = 12  # the random stream of the phrasing
NOVELTY_SPOKEN = 0.4  # |novelty propensity| above which a user asks for novelty or familiarity
SATIATION_DISCOUNT = 1.5  # how much satiation weighs against interest in the genre asked for


def voice(state: UserState, tables: ItemTables, speaks: torch.Tensor, instruction_satiation: float,
          instruction_steps: int) -> Instruction:
    """The structured instruction of the users who ``speak`` (bool ``[B]``), put in force
    for ``instruction_steps`` steps; an :class:`~recoworld.types.Instruction` of ``B`` rows
    (inactive where nobody speaks)."""
    B, G = speaks.shape[0], tables.genres.shape[1]
    voiced = Instruction.none(B, G, speaks.device)
    # The speakers' rows alone, found by a search (a wait for the device on a GPU), not every
    # row kept by mask: the appeal's matrix product rounds its last bit by its number of
    # rows, so the genre asked for in a near tie would depend on who else is in the batch.
    rows = speaks.nonzero().flatten()
    satiation = state.satiation[rows]
    top_sat, top_genre = satiation.max(1)
    less = torch.nn.functional.one_hot(top_genre, G).bool() & (top_sat > instruction_satiation)[:, None]
    appeal = state.interest[rows] @ tables.genre_centroids.T - SATIATION_DISCOUNT * satiation
    more = torch.nn.functional.one_hot(appeal.masked_fill(less, -torch.inf).argmax(1), G).bool()
    seeking = state.novelty_seeking[rows]
    novelty = torch.where(seeking > NOVELTY_SPOKEN, 1, torch.where(seeking < -NOVELTY_SPOKEN, -1, 0)).to(torch.int8)
    for instruction in (voiced, state.instruction):
        instruction.active[rows], instruction.more[rows], instruction.less[rows] = True, more, less
        instruction.novelty[rows] = novelty
    state.instruction_steps_left[rows] = instruction_steps
    return voiced


def phrase_codes(voiced: Instruction, key: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """The code of each voiced instruction's sentence ``[B]`` (int32, -1 when none):

    ``((more + 1) (G + 1) + less + 1) 9 + (novelty + 1) 3 + phrasing``

    with the ``more`` and ``less`` genres (:func:`voice` puts at most one in each; -1 when
    empty), the novelty in -1, 0, 1 and one of three phrasings drawn from the user's
    ``key`` at step ``counter``."""
    G = voiced.more.shape[1]
    more = torch.where(voiced.more.any(1), voiced.more.int().argmax(1), -1)
    less = torch.where(voiced.less.any(1), voiced.less.int().argmax(1), -1)
    phrasing = rng.bits(key, counter, S_PHRASE, 1)[:, 0] % 3
    code = ((more + 1) * (G + 1) + less + 1) * 9 + (voiced.novelty.long() + 1) * 3 + phrasing
    return torch.where(voiced.active, code, -1).to(torch.int32)


class Phrasebook:
    """The sentences of phrase codes over a catalog's genre names: a table indexed by the
    code ((G + 1)^2 9 entries), each sentence rendered the first time its code is met (a
    large batch voices a few hundred distinct sentences at a step)."""

    def __init__(self, catalog: Catalog):
        self.genre_names = catalog.genre_names
        self._sentences = np.full((len(self.genre_names) + 1) ** 2 * 9, None, dtype=object)

    def render(self, phrase: torch.Tensor) -> np.ndarray:
        """The sentence of each code of ``phrase`` ``[B]`` (``None`` for -1), as a numpy object
        array: the form the env's info hands out, so that no list of ``B`` entries is built
        and converted at each step."""
        phrase = phrase.cpu().numpy()
        text = np.full(len(phrase), None, dtype=object)
        speakers = np.flatnonzero(phrase >= 0)
        if len(speakers) == 0:
            return text
        spoken = self._sentences[phrase[speakers]]
        unseen = np.flatnonzero(np.equal(spoken, None))  # codes not rendered yet
        if len(unseen):
            for code in np.unique(phrase[speakers[unseen]]).tolist():
                self._sentences[code] = self.sentence(code)
            spoken = self._sentences[phrase[speakers]]
        text[speakers] = spoken
        return text

    def sentence(self, code: int) -> str:
        """The sentence of phrase code ``code`` (see :func:`phrase_codes`)."""
        names, G = self.genre_names, len(self.genre_names)
        genres, rest = divmod(code, 9)
        more, less = divmod(genres, G + 1)
        return render_instruction(
            [names[more - 1]] if more else [], [names[less - 1]] if less else [], rest // 3 - 1, rest % 3)
