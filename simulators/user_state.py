"""The state of a batch of statistical users: its tensors, the item tables, and new users.

:func:`allocate` makes the :class:`~recoworld.kernels.users.UserState` of ``B`` user slots,
:func:`item_tables` the :class:`~recoworld.kernels.users.ItemTables` their step reads, and
:func:`start_users` puts new users into slots (the torch reference of the C kernel's
start): their traits, the state of a first visit (no satiation, the initial mindset, no
history, no instruction) and the first session's novelty propensity.
"""

from __future__ import annotations

import torch

from recoworld import rng
from recoworld.catalog import Catalog, popularity_score
from recoworld.kernels.users import ItemTables, UserState
from recoworld.types import Instruction

# Named random streams: each kind of draw has its own, so adding one never shifts another.
S_SESSION = 2
S_STEP, S_GAP = 10, 11
HISTORY = 10  # last clicks remembered, with their item satiation


def item_tables(catalog: Catalog, quality_weight: float, click_threshold: float) -> ItemTables:
    """The tables of ``catalog`` (on its device) that the users' step reads."""
    centroids = torch.nn.functional.normalize(catalog.genres.float().T @ catalog.features, dim=1)
    return ItemTables(features=catalog.features, genre_weights=catalog.genre_weights,
                      genres=catalog.genres.contiguous(), quality=catalog.quality,
                      static_appeal=quality_weight * catalog.quality - click_threshold,
                      popularity_score=popularity_score(catalog), genre_centroids=centroids.contiguous())


def allocate(n: int, feature_dim: int, n_genres: int, device: torch.device, remembered_items: int = 0) -> UserState:
    """The state of ``n`` empty user slots (start them with :func:`start_users`), with a
    memory of every item clicked among the first ``remembered_items`` (0: none; see
    :func:`was_watched`)."""
    if n < 1:
        raise ValueError(f"n_users={n}; a simulator needs at least one user")
    d, g, dev = feature_dim, n_genres, device
    zeros = lambda *shape, **kw: torch.zeros(*shape, device=dev, **kw)  # noqa: E731
    return UserState(
        key=zeros(n, dtype=torch.int64), counter=zeros(n, dtype=torch.int32),
        interest=zeros(n, d), familiar=zeros(n, d), patience=zeros(n), novelty_trait=zeros(n),
        novelty_seeking=zeros(n), activity=torch.ones(n, device=dev), popularity_bias=zeros(n),
        rating_bias=zeros(n), source_user=torch.full((n,), -1, dtype=torch.int64, device=dev),
        satiation=zeros(n, g), satisfaction=zeros(n), session_memory=zeros(n), session_mean=zeros(n),
        session_peak=zeros(n), recent_satiation=zeros(n, HISTORY), theme=zeros(n, g),
        watched=zeros(n, (remembered_items + 63) // 64, dtype=torch.int64),
        session_index=zeros(n, dtype=torch.int64), session_step=zeros(n, dtype=torch.int64),
        churned=zeros(n, dtype=torch.bool), recent_clicks=torch.full((n, HISTORY), -1, dtype=torch.int64, device=dev),
        instruction=Instruction.none(n, g, dev), instruction_steps_left=zeros(n, dtype=torch.int64),
    )


def start_users(state: UserState, slots: torch.Tensor, keys: torch.Tensor, traits, initial_mindset: float,
                novelty_session_spread: float) -> None:
    """Put new users with random ``keys`` (int64 ``[n]``) and ``traits`` (a population's
    :class:`~recoworld.simulators.population.UserTraits`) into ``slots`` of ``state``."""
    s = state
    s.key[slots] = keys
    s.counter[slots] = 0
    s.source_user[slots] = traits.source_user
    s.interest[slots] = traits.interest
    s.familiar[slots] = traits.interest
    s.patience[slots] = traits.patience
    s.novelty_trait[slots] = traits.novelty_trait
    s.activity[slots] = traits.activity
    s.popularity_bias[slots] = traits.popularity_bias
    # Optional trait: only some populations know how a user's ratings sit.
    rating_bias = getattr(traits, "rating_bias", None)
    s.rating_bias[slots] = 0.0 if rating_bias is None else rating_bias
    s.satiation[slots] = 0.0
    s.satisfaction[slots] = initial_mindset
    s.session_memory[slots] = initial_mindset
    s.session_mean[slots] = initial_mindset
    s.session_peak[slots] = initial_mindset
    s.session_index[slots] = 0
    s.session_step[slots] = 0
    s.churned[slots] = False
    s.recent_clicks[slots] = -1
    s.recent_satiation[slots] = 0.0
    s.watched[slots] = 0
    starts = torch.zeros_like(s.churned)
    starts[slots] = True
    new_session(state, starts, novelty_session_spread)


def was_watched(words: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Whether each user has clicked each of ``items`` (``[B, C]``, bool): ``words`` is the
    state's ``watched`` ``[B, W]``, bit ``i % 64`` of word ``i // 64`` set once item ``i``
    was clicked."""
    return ((words.gather(1, items >> 6) >> (items & 63)) & 1).bool()


def remember_watched(words: torch.Tensor, slates: torch.Tensor, clicked: torch.Tensor) -> None:
    """Set in ``words`` (in place) the bits of the items of ``slates`` that were ``clicked``
    (both ``[B, K]``). The bits not set yet are added to their words: a slate's items are
    distinct (``check_slates``), so the bits added to one word are distinct and their sum
    is their OR."""
    index = slates >> 6
    bits = torch.ones_like(slates) << (slates & 63)
    fresh = bits & ~words.gather(1, index)
    words.scatter_add_(1, index, torch.where(clicked, fresh, 0))


def sign_up_draw(keys: torch.Tensor) -> torch.Tensor:
    """Each user's standard normal sign-up draw ``[B]``, whose positive part lowers the first
    session's leave hazard (``first_session_spread``,
    :func:`~recoworld.simulators.equations.leave_hazard`):
    the second draw of the session stream at the first session, the first being that
    session's novelty propensity (:func:`new_session`). A function of the key alone, so it
    is drawn where it is needed and kept nowhere."""
    return rng.normal(keys, torch.zeros_like(keys), S_SESSION, 2)[:, 1]


def new_session(state: UserState, starts: torch.Tensor, novelty_session_spread: float) -> None:
    """A new session of the users where ``starts`` (bool ``[B]``) holds: no instruction, no
    theme, and a fresh novelty propensity around their trait, drawn from the session's
    index. Drawn for every row and kept where ``starts`` holds, so that no one reads back
    who starts (a wait for the device on a GPU): each row's draw is its own."""
    state.instruction.clear(starts)
    state.theme.masked_fill_(starts[:, None], 0.0)
    state.instruction_steps_left.masked_fill_(starts, 0)
    draw = rng.normal(state.key, state.session_index, S_SESSION, 1)[:, 0]
    state.novelty_seeking.copy_(torch.where(starts, state.novelty_trait + novelty_session_spread * draw,
                                            state.novelty_seeking))
