r"""Batched statistical users: every user of a batch steps in a few tensor ops.

Notation: user :math:`b`, item :math:`i` with unit features :math:`f_i`, genre weights
:math:`w_i` (its genres, summing to 1), standardised log-popularity :math:`\tilde p_i` and
quality :math:`q_i`.

**Users** (drawn at reset from a :class:`~recoworld.simulators.population.Population`):
interest :math:`u_b` (unit vector: two popularity-sampled anchor items plus noise),
patience :math:`\gamma_b \in (0,1)`, novelty seeking :math:`\nu_b` (static trait; each
session draws a propensity :math:`\nu_{bs} = \nu_b + \sigma_s\epsilon`), activity
:math:`a_b > 0` (how often they come back) and popularity bias :math:`\pi_b`.

**Utility and click** of item :math:`i` at step :math:`t`:

.. math::

    v_{bi} = \alpha\langle u_b, f_i\rangle + \beta q_i + \pi_b \tilde p_i
             + \nu_{bs}(d_{bi} - 1) - \kappa_s\langle s_b, w_i\rangle - \kappa_r \sigma_{bi}
             + \kappa_t\langle T_b, w_i\rangle - c,
    \qquad P(\text{click} \mid \text{examined}) = \sigma(v_{bi})

where :math:`d_{bi} = 1 - \langle h_b, f_i\rangle \in [0, 2]` is the item's distance from
the user's recent consumption :math:`h_b`, :math:`s_b \in [0,1]^G` the per-genre satiation
and :math:`\sigma_{bi} \in [0, 1]` the user's satiation with the item itself (0 unless it is
among their last clicks). With ``rewatch`` false a user never clicks an item twice: every
item they clicked is remembered (a bit per item, state ``watched``) and its utility is
:math:`-\infty` (a rating log such as MovieLens's holds one rating per film); by default
(true) an item can be clicked again once its item satiation fades.

**Examination** (cascade with position bias and a no-click option): position 1 is examined;
after position :math:`k` the user goes on with probability :math:`\gamma_b` if they did not
click and :math:`\gamma_b\rho` if they did. Unexamined positions carry no feedback. A
clicked item gets a watch fraction :math:`\sigma(v + 1 + 0.45\epsilon)`, a like with
probability :math:`\sigma(2v - 1)`, and a rating
:math:`\mathrm{clip}(\mathrm{round}(r_0 + r_v v + r_q q_i + b_b + r_\epsilon\epsilon), 1, 5)`,
with :math:`\epsilon` one standard logistic draw (standard deviation 1.81) shared by
both, so that watching more than expected goes with a higher rating. By default
:math:`r_0 = 4.3`, :math:`r_v = 0.9`, :math:`r_q = 0`, :math:`r_\epsilon = 0.33`
(``rating_center``, ``rating_slope``, ``rating_quality``, ``rating_noise``; the center puts
the mean rating of what users click near MovieLens's 3.5 stars, clicked items sitting
below :math:`v = 0`) and the user's rating bias :math:`b_b` is 0; a population whose traits
carry a ``rating_bias`` tensor (the calibrated MovieLens users do) sets it per user.

**Dynamics** after each step, with :math:`x_{bg} = \sum_k e_k w_{ig}(0.2 + 0.8\,c_k\,\omega_k)`
the exposure-and-consumption of genre :math:`g` (:math:`e` examined, :math:`c` clicked,
:math:`\omega` watch fraction):

- genre satiation :math:`s \leftarrow (1-\delta)s + (1-s)\,\eta_s x/(1 + \eta_s x)`, which stays in
  :math:`[0,1]` and grows with diminishing returns in the exposure (so the mix of the
  slate shows), and recovers between sessions as :math:`s \leftarrow s\,e^{-\text{gap}/\tau}`;
- item satiation: a clicked item's level becomes :math:`\sigma + (1-\sigma)\,\omega`; the
  levels of the last ``HISTORY`` clicks fade by :math:`1-\delta_i` a step and by
  :math:`e^{-\text{gap}/\tau_i}` over a break (``item_satiation_decay``,
  ``item_recovery_days``);
- interest drift :math:`u \leftarrow \mathrm{normalize}(u + \eta_u\sum_k c_k\omega_k f_k)`;
- the session's theme :math:`T_b \in \{0, 1\}^G`: empty at a session's start, then the
  genres of the session's first click, for the rest of the session; it adds
  :math:`\kappa_t\langle T_b, w_i\rangle` to the utility (``theme_weight``
  :math:`\kappa_t`, 0 by default): a session is about something;
- mindset :math:`m \leftarrow (1-\lambda)m + \lambda\,\bar q`, with step quality
  :math:`\bar q = \mathrm{clip}(1 - e^{-J/\xi} + \kappa_c(\text{compliance} - 0.5), 0, 1)`,
  concave in the step's summed enjoyment :math:`J = \sum_k c_k (\text{rating}_k - 1)/4`
  (``quality_scale`` :math:`\xi`): the user's own judgement after watching, not the click,
  where every film enjoyed adds, each a little less. What draws a click (interest,
  popularity) and what is enjoyed (in the calibrated MovieLens world mostly the film's
  quality: its rating slope on quality is large, its click weight small; see
  ``benchmarks/RESULTS.md``) part there, so a recommender that only chases clicks serves
  disappointing sessions;
- session memory :math:`M = w\,\tfrac12(P + \bar q) + (1-w)\bar Q`: the peak-end rule
  over the session's step quality (its peak :math:`P`, its last step and its mean
  :math:`\bar Q`; ``peak_end_weight`` :math:`w`): how the session went, remembered for the
  return.

**Leaving**: the leave hazard is
:math:`h = \sigma(h_0 + h_m(0.5 - m) + h_b\,\text{boredom} + h_\ell\,t_{\text{session}} - \pi\,h_\gamma(\gamma_b - 0.75)
+ (h_1 - \sigma_1 z_b^+)[\text{first session}])`,
where boredom is the mean satiation of the examined items' genres. A session the user
returns for is, with probability ``quick_visit_share`` (0 by default), a visit for one
thing, which ends after its first step without an instruction (the calibration fits it to
the share of single-rating visits). A user's first session
is set apart: :math:`h_1` (``leave_first_session``) shifts it, :math:`\pi`
(``first_session_patience``) is the share of the patience term in it, 1 later (below 0 and
at 0, a newcomer's first visit outlasts the visits they return for, whatever their habitual
patience, as a sign-up's burst of ratings does), and :math:`\sigma_1`
(``first_session_spread``) lowers it for some newcomers: :math:`z_b` is the user's own
standard normal sign-up draw and :math:`z_b^+` its positive part, so half of the newcomers
keep the common level and the others rate a longer burst (the defaults 0, 1 and 0 treat
every session alike, and the calibration fits all three). A user whose hazard
exceeds ``instruction_threshold`` senses they are about to leave: with probability
``voice_probability`` (if no instruction is already in force) they voice a reflective
instruction and stay; otherwise they leave with probability :math:`h`.

**Returning**: a user who leaves returns with probability
:math:`\sigma(r_0 + r_m(M - 0.5) + \log a_b + r_1[\text{first session}])` after a gap of mean
``gap_days`` :math:`e^{g_1[\text{first session}]}` / (:math:`a_b(0.5 + M)\,L^{\varepsilon}`) days, Weibull of
shape ``gap_shape`` (1, the default: exponential; the calibration fits a heavier tail, below
1; at least 0.05, below which the draw leaves float32), or churns, which ends their
episode (a gap too long for float32, from a huge ``gap_days`` say, is its largest number,
3.4e38 days: an infinite gap stands for churn). :math:`L` is the session's length in steps and
:math:`\varepsilon` ``gap_length_elasticity`` (0, the default: no effect; the calibration
fits it within users: a longer session, an earlier return). The end of a user's first
session is set apart again: :math:`r_1` (``return_first_session``) shifts the odds of
coming back and :math:`g_1` (``gap_first_session``, at most 88.72, where :math:`e^{g_1}` reaches
the largest float32) the log of the gap's mean for a share
``gap_first_share`` of the newcomers who come back, the others returning as after a later
session (the defaults, 0 and 1, treat every session alike; calibrated on MovieLens, fewer
newcomers come back after the sign-up than regulars after a visit, and those who do,
either within hours or weeks later, as regulars do). It is the
whole session's memory :math:`M` that decides, not the mindset of the moment of leaving:
users leave when their mindset dips, whoever served them, so the mindset at leaving
varies little between recommenders, while how the session went as a whole does.

**Instructions**: ``less`` is the most satiated genre (if its satiation exceeds
``instruction_satiation``), ``more`` the genre with the best interest net of satiation,
``novelty`` the sign of :math:`\nu_{bs}` when :math:`|\nu_{bs}| > 0.4`. While an
instruction is in force (``instruction_steps`` steps, or until the session ends), each
slate's compliance — the mean of the applicable parts: share of items outside ``less``,
share of items in ``more`` relative to ``more_share``, share of novel (:math:`d > 1`) or
familiar items — moves the step quality and hence the mindset.

The dynamics, leaving and returning are the functions of
:mod:`recoworld.simulators.equations`, which every kind of user follows; the voicing of
instructions is :mod:`recoworld.simulators.phrasing`'s. All randomness comes from
:mod:`recoworld.rng`: user ``b``'s draws depend only on its seed and its step count, so
results do not depend on the batch a user is simulated in (beyond float rounding, see
``kernel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import torch

from recoworld import rng
from recoworld.catalog import Catalog, lookup
from recoworld.config_checks import AT_LEAST_ONE, check_number
from recoworld.kernels.placement import torch_device
from recoworld.kernels.state import expose_fields
from recoworld.kernels.users import UserState
from recoworld.types import Response
from recoworld.validation import check_slates
from recoworld.simulators import equations
from recoworld.simulators.backends import KERNELS, USERS_KERNEL, beyond_c, users_backend
from recoworld.simulators.base import UserSimulator, integer_ids, resolve_seeds, restart_slots
from recoworld.simulators.phrasing import Phrasebook
from recoworld.simulators.population import Population, SyntheticPopulation
# The config lives in a torch-free module (configs are checked without torch); re-exported here.
from recoworld.simulators.statistical_config import MAX_GAP_FIRST_SESSION, MIN_GAP_SHAPE, StatisticalUserConfig
from recoworld.simulators.user_state import allocate, item_tables, was_watched

__all__ = ["KERNELS", "MAX_GAP_FIRST_SESSION", "MIN_GAP_SHAPE", "StatisticalUserConfig", "StatisticalUsers"]


class StatisticalUsers(UserSimulator):
    """``B`` statistical users stepped together with torch tensor ops.

    Args:
        catalog: the items.
        config: response and dynamics parameters; defaults are used when omitted.
        population: where new users' traits come from (default: a
            :class:`~recoworld.simulators.population.SyntheticPopulation`).
        device: ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        kernel: how a step runs, chosen once here (see
            :mod:`recoworld.simulators.backends`). ``"auto"`` (default): ``"c"`` on CPU
            where the C kernels run (shipped prebuilt with the package, or compiled on
            first use with the system C compiler, ``$CC`` or ``cc``), ``"torch"`` on other
            devices, without a compiler, for a subclass that changes the utility, or for a
            catalog beyond the C kernel's sizes (features or genres over 1,024; the envs
            also choose torch for slates over 256 items).
            ``"torch"`` (the reference): tensor ops, on any device. ``"c"``: the fused C
            kernel for CPU (:mod:`recoworld.kernels.users`), which raises
            :class:`~recoworld.kernels.CompilerNotFoundError` where it cannot be built, and
            ``ValueError`` for a catalog beyond its sizes.
            :attr:`kernel` names the one that runs. Both draw the same random numbers,
            bit for bit, and compute the same equations, so they agree up to float
            rounding: probabilities and continuous outputs within about 1e-6, but a draw
            within rounding of its threshold may go the other way, after which the two
            trajectories part. Each user's result does not depend on the batch: with
            ``"c"`` bit for bit, with ``"torch"`` to float rounding (its vectorised ops
            may round the last bit of a row by the batch's size). With ``"c"`` the state
            tensors are updated in place.

    State tensors (``[B, ...]``) live in :attr:`state` (a
    :class:`~recoworld.kernels.users.UserState`) and read as attributes too, so that tests
    and envs can read them: ``interest``, ``satiation``, ``satisfaction`` (the mindset),
    ``session_memory``, ``patience``, ``activity``, ``session_index``, ``session_step``,
    ``churned``, and the ``instruction`` in force. Assigning one (``users.satisfaction =
    x``) copies ``x`` into the state's tensor, which keeps its dtype and shape: ``x`` of
    another shape, or of a dtype that would lose values, raises ``ValueError``
    (:func:`~recoworld.kernels.state.copy_into`).
    """

    def __init__(self, catalog: Catalog, config: StatisticalUserConfig | None = None,
                 population: Population | None = None, device="cpu", kernel: str = "auto"):
        self.config = config or StatisticalUserConfig()
        self.population = population or SyntheticPopulation()
        self.device = torch_device(device)
        self.catalog = catalog.to(self.device)
        self.tables = item_tables(self.catalog, self.config.quality_weight, self.config.click_threshold)
        self.kernel_choice = kernel  # the choice asked for, which fit_slates follows
        self._use_backend(kernel)
        self.phrasebook = Phrasebook(self.catalog)
        self.state: UserState | None = None
        self.n_users = 0
        self._fresh_seed = 0

    def _use_backend(self, kernel: str) -> None:
        self.backend = users_backend(kernel, self.tables, self.config, self._utility, self.device,
                                     custom_utility=type(self)._utility is not StatisticalUsers._utility)
        self.kernel: str = self.backend.name  # the kernel that runs: "torch" or "c"

    def fit_slates(self, slate_size: int) -> None:
        """Run the torch step where ``kernel="auto"`` chose C but slates of ``slate_size``
        items exceed the C kernel's bound: the slates' size is known to the env, which may be
        built after the users (``recoworld run`` builds them so). Both backends step the same
        :attr:`state`. An explicit ``kernel="c"`` stays C (the env refuses the slates)."""
        slates = {"K": ("slate_size", slate_size)}
        if self.kernel == "c" and self.kernel_choice == "auto" and beyond_c(USERS_KERNEL, slates):
            self._use_backend("torch")

    # ------------------------------------------------------------------ reset
    def reset(self, n_users: int, seed: int | Sequence[int] | None = None, users=None) -> None:
        n_users = check_number(f"{type(self).__name__}.reset", "n_users", n_users, AT_LEAST_ONE, integer=True)
        if users is None:
            self._allocate(n_users)
            slots = torch.arange(n_users, device=self.device)
        else:
            if n_users != self.n_users:
                raise ValueError(f"reset(n_users={n_users}, users=...) on a simulator of {self.n_users} users; "
                                 "restarting some users keeps the batch size")
            slots = restart_slots(users, n_users).to(self.device)
        if len(slots) == 0:
            return
        fresh_start = self._fresh_seed
        if seed is None:
            self._fresh_seed += len(slots)
        self._start(slots, resolve_seeds(len(slots), seed, fresh_start, salt=0xF2E5))

    def _allocate(self, n: int) -> None:
        self.state = allocate(n, self.catalog.feature_dim, self.catalog.n_genres, self.device,
                              0 if self.config.rewatch else self.catalog.n_items)
        self.n_users = n

    def _start(self, slots: torch.Tensor, seeds: torch.Tensor) -> None:
        """Draw new users into ``slots`` from their seeds."""
        self.backend.start(self.state, slots, rng.user_keys(seeds, self.device), self.population, self.catalog)

    # --------------------------------------------------------------- utilities
    def _utility(self, items: torch.Tensor, feats: torch.Tensor, weights: torch.Tensor, state=None):
        """Utility ``v`` ``[B, C]`` of ``items`` (features ``feats`` ``[B, C, D]`` and genre
        weights ``weights`` ``[B, C, G]``), with its satiation and distance terms; of the
        users of ``state`` (default: every slot's, :attr:`state`)."""
        c, s, t = self.config, self.state if state is None else state, self.tables
        affinity = torch.bmm(feats, s.interest[:, :, None])[..., 0]
        distance = equations.distance_from_familiar(feats, s.familiar)
        satiation = torch.bmm(weights, s.satiation[:, :, None])[..., 0]
        repeat = equations.item_satiation(items, s.recent_clicks, s.recent_satiation)
        v = c.interest_weight * affinity + lookup(t.static_appeal, items)
        v += s.popularity_bias[:, None] * lookup(t.popularity_score, items)
        v += s.novelty_seeking[:, None] * (distance - 1.0)
        v -= c.satiation_weight * satiation
        v -= c.repeat_penalty * repeat
        if c.theme_weight != 0.0:
            v += equations.theme_appeal(weights, s.theme, c)
        if s.watched.shape[1]:
            v = v.masked_fill(was_watched(s.watched, items), -torch.inf)
        return v, satiation, distance

    def click_probabilities(self, items: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.utility(items))

    def utility(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """The click utility :math:`v` ``[n, C]`` (the logit of :meth:`click_probabilities`)
        of ``items`` ``[n, C]`` for the users in the slots ``users`` ``[n]`` (default: every
        slot, in order), computed for those users alone (by a subclass that changes the
        utility, for every slot). ``ValueError`` names an item id outside the catalog, or a
        slot outside the batch."""
        if self.state is None:
            raise RuntimeError("call reset(n_users, seed) before click_probabilities() or utility()")
        if users is not None:
            users = _ids_within(users, "users", "slot", self.n_users, f"there are {self.n_users} user slots",
                                self.device).flatten()
        items = _ids_within(items, "items", "item", self.catalog.n_items,
                            f"the catalog has {self.catalog.n_items} items", self.device)
        rows = self.n_users if users is None else len(users)
        if items.ndim != 2 or len(items) != rows:
            raise ValueError(f"items has shape {tuple(items.shape)}; expected [{rows}, C]: a row of item ids for each "
                             + ("user slot" if users is None else "slot in users"))
        return self.utility_valid(items, users)

    def utility_valid(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`utility` of ids known valid (as :meth:`respond_valid` is to :meth:`respond`):
        ``items`` int64 ``[n, C]`` on :attr:`device`, ids of the catalog; ``users`` int64
        ``[n]`` slots of the batch, or ``None`` for every slot. Nothing is checked: a bad id
        indexes out of bounds (a device-side assert on a GPU). For callers that build their
        ids every step (:meth:`expected_clicks` after its own check, the planning oracle's
        lookahead, the calibration's reference recommender), whom a check would cost a read
        back to the host at every step: on a GPU, a wait for the device."""
        state = None
        if users is not None:
            if type(self)._utility is not StatisticalUsers._utility:  # its utility reads every slot's state
                every = torch.zeros(self.n_users, items.shape[1], dtype=torch.long, device=self.device)
                every[users] = items
                return self.utility_valid(every)[users]
            state = _Slots(self.state, users)
        features, weights = lookup(self.catalog.features, items), lookup(self.catalog.genre_weights, items)
        if state is None:
            return self._utility(items, features, weights)[0]
        return self._utility(items, features, weights, state)[0]

    def expected_clicks(self, slates: torch.Tensor) -> torch.Tensor:
        """Exact expected clicks under the cascade: :math:`\\sum_k P(e_k) p_k`."""
        slates = self._check(slates)  # ids in the catalog and distinct: checked once, here
        p = torch.sigmoid(self.utility_valid(slates))  # click_probabilities(slates), without a second check
        go_on = self.patience[:, None] * (1.0 - p * (1.0 - self.config.continue_after_click))
        examined = torch.cumprod(torch.cat([torch.ones_like(p[:, :1]), go_on[:, :-1]], 1), 1)
        return (examined * p).sum(1)

    def _check(self, slates) -> torch.Tensor:
        if self.n_users == 0:
            raise RuntimeError("call reset(n_users, seed) before respond()")
        cat = self.catalog
        return check_slates(slates, cat.n_items, n_rows=self.n_users,
                            universe=f"the catalog has {cat.n_items} items").to(self.device)

    # ----------------------------------------------------------------- respond
    @property
    def holds_idle(self) -> bool:
        # A backend that skips idle slots holds them; a subclass that changes respond
        # answers through its own path.
        return self.backend.holds_idle and type(self).respond is StatisticalUsers.respond

    def respond(self, slates) -> Response:
        return self._step(self._check(slates))

    def respond_valid(self, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Response:
        # Skips the check (a sort per row) unless a subclass changed respond, whose own
        # path then stands.
        if type(self).respond is not StatisticalUsers.respond:
            return self.respond(slates)
        return self._step(slates, idle)

    def _step(self, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Response:
        """One step of every user for valid slates; slots in ``idle`` (whose answer the
        caller discards) are skipped (neither read nor written) and answer zeros, by a
        backend that holds idle slots; the torch one steps them with the rest."""
        held = idle if self.backend.holds_idle else None
        stepping = self.churned if held is None else self.churned & ~held
        if bool(stepping.any()):
            gone = int(stepping.nonzero()[0])
            raise ValueError(f"user slot {gone} has churned; restart it with reset(n_users, seed, users=[{gone}])")
        r = self.backend.step(self.state, slates, held)
        return Response(
            examined=r.examined, clicked=r.clicked, watch_fraction=r.watch, liked=r.liked, rating=r.rating,
            satisfaction=r.mindset, leave_hazard=r.hazard, left_session=r.leaves,
            returned=r.returned, return_gap=r.gap, churned=r.leaves & ~r.returned,
            instruction_in_force=r.in_force, compliance=r.compliance,
            instruction=r.voiced, instruction_text=self.phrasebook.render(r.phrase),
        )

    def state_dict(self) -> dict:
        """The configuration as a plain dict (for run directories)."""
        return asdict(self.config)


def _ids_within(ids, name: str, what: str, count: int, universe: str, device: torch.device) -> torch.Tensor:
    """``ids`` as an int64 tensor on ``device``; ``ValueError`` naming an entry that is not an
    integer or not in ``0..count-1`` (which indexing would meet as torch's ``IndexError``, or
    as a device-side assert on a GPU): one pass over valid ids, one more to name a bad one."""
    ids = integer_ids(ids, name, what, device).long()
    if ids.numel():
        low, high = torch.stack(torch.aminmax(ids)).tolist()  # one pass, one sync
        if low < 0 or high >= count:
            bad = ((ids < 0) | (ids >= count)).nonzero()[0].tolist()
            raise ValueError(f"{name}{''.join(f'[{i}]' for i in bad)} is {what} {int(ids[tuple(bad)])}, but "
                             f"{universe} (valid ids 0..{count - 1})")
    return ids


class _Slots:
    """The rows ``users`` of a :class:`~recoworld.kernels.users.UserState`'s tensors, each
    taken on its first read: what the utility of some users reads of the batch's state."""

    def __init__(self, state: UserState, users: torch.Tensor):
        self._state, self._users = state, users

    def __getattr__(self, name: str) -> torch.Tensor:
        rows = getattr(self._state, name).index_select(0, self._users)
        setattr(self, name, rows)  # taken once: the utility reads some fields twice
        return rows


expose_fields(StatisticalUsers, UserState)  # users.satiation reads users.state.satiation, and so on
