r"""The user equations: how a simulated user's state moves, once, for every kind of user.

Every kind of user — :class:`~recoworld.simulators.statistical.StatisticalUsers` (and its
C kernel, which ports these formulas), :class:`~recoworld.simulators.llm_user.LLMUsers` and
:class:`~recoworld.simulators.hybrid.HybridUsers` — moves its state with the functions of
this module. They are pure: tensors in, tensors out, no state and no randomness of their
own (a uniform draw comes in as an argument, drawn by the caller from its user's stream of
:mod:`recoworld.rng`). The parameters are read by name from a
:class:`~recoworld.simulators.statistical.StatisticalUserConfig` (any object with the same
attributes will do, see :class:`UserEquationsConfig`).

Notation: user :math:`b` (the leading dimension of every tensor), slate position
:math:`k`, genre :math:`g`; :math:`e_k` examined, :math:`c_k` clicked, :math:`\omega_k`
watch fraction, :math:`f_k` the item's unit features, :math:`w_{kg}` its genre weights
(summing to 1 over its genres).

**One step** (after the slate's reactions):

1. exposure :math:`x_g` and genre satiation build-up (:func:`genre_exposure`,
   :func:`satiation_build_up`); item satiation of the clicked items
   (:func:`item_satiation`, :func:`item_satiation_build_up`, :func:`item_satiation_decay`);
   consumption, interest drift and familiarity (:func:`consumption`,
   :func:`interest_drift`, :func:`familiarity_update`); the session's theme
   (:func:`session_theme`, which :func:`theme_appeal` adds to the utility);
2. the step's summed enjoyment :math:`J` and its quality :math:`\bar q`, concave in it
   (:func:`step_enjoyment`, :func:`step_quality`), with the compliance of the slate with
   the instruction in force (:func:`instruction_compliance`, measured on the distance of
   :func:`distance_from_familiar`);
3. mindset :math:`m` and the session's memory :math:`M`, by the peak-end rule
   (:func:`mindset_update`, :func:`session_memory_update`);
4. the leave hazard :math:`h` (:func:`leave_hazard`, with :func:`boredom`), the countdown
   of the instruction in force (:func:`instruction_countdown`), visits for one thing
   (:func:`quick_visit`), and the decision to voice an instruction or to leave
   (:func:`voice_or_leave`);
5. for leavers, whether they return and after how long (:func:`return_decision`, from
   :func:`return_probability`, :func:`first_gap_law`, :func:`mean_return_gap` and
   :func:`return_gap`); a
   returning user's genre and item satiation recover over the gap
   (:func:`satiation_recovery`, :func:`item_satiation_recovery`) and its mindset regresses
   towards its baseline (:func:`mindset_after_break`).

It is the session memory :math:`M` — how the session went as a whole, as people remember
it: by its best step and its last — that decides the return, not the mindset of the moment
of leaving: users leave when their mindset dips, whoever served them, so the mindset at
leaving varies little between recommenders, while how the session went does. Because the
step quality grows with every film enjoyed (with diminishing returns) and satiation wears
a genre, and a film, by how much of it was served, a recommender that serves sessions
well brings users back more often and sooner.

An LLM user follows the same rule: its model decides what it does within a step (its
reactions, the satisfaction it states, whether it leaves, what it says), and the equations
carry the rest — session memory, return and gap, the instruction's countdown and
compliance, familiarity.

Each function computes with the same torch operations, in the same order, as the
reference step of the statistical users, so that its result is bit-for-bit theirs.
"""

from __future__ import annotations

from typing import Protocol

import torch

from recoworld.config_checks import FLOAT32_MAX
from recoworld.rng import weibull_mean_factor
from recoworld.types import Instruction

#: The longest gap between sessions, in days: the largest float32 (:func:`return_gap`).
LONGEST_GAP = FLOAT32_MAX


class UserEquationsConfig(Protocol):
    """The parameters the equations read (the fields of the same names of
    :class:`~recoworld.simulators.statistical.StatisticalUserConfig`, which documents them)."""

    satiation_rate: float
    satiation_decay: float
    satiation_recovery_days: float
    item_satiation_decay: float
    item_recovery_days: float
    quality_scale: float
    peak_end_weight: float
    interest_drift: float
    familiarity_rate: float
    mindset_rate: float
    compliance_weight: float
    leave_base: float
    leave_mindset: float
    leave_boredom: float
    leave_length: float
    leave_patience: float
    leave_first_session: float
    first_session_spread: float
    quick_visit_share: float
    theme_weight: float
    first_session_patience: float
    return_base: float
    return_mindset: float
    gap_days: float
    gap_shape: float
    gap_length_elasticity: float
    return_first_session: float
    gap_first_session: float
    gap_first_share: float
    instruction_threshold: float
    voice_probability: float


# ------------------------------------------------------------------ satiation
def genre_exposure(examined: torch.Tensor, clicked: torch.Tensor, watch: torch.Tensor,
                   genre_weights: torch.Tensor) -> torch.Tensor:
    r"""Exposure-and-consumption of each genre in one step, ``[B, G]`` (before capping):

    .. math:: x_g = \sum_k e_k\, w_{kg}\,(0.2 + 0.8\, c_k\, \omega_k)

    Seeing an item wears a genre a little, watching it wears it more.

    Args:
        examined, clicked: float ``[B, K]`` (0/1).
        watch: watch fractions ``[B, K]``.
        genre_weights: ``[B, K, G]``.
    """
    return torch.bmm((examined * (0.2 + 0.8 * clicked * watch))[:, None, :], genre_weights)[:, 0]


def session_theme(theme: torch.Tensor, slates: torch.Tensor, clicked: torch.Tensor,
                  genres: torch.Tensor) -> torch.Tensor:
    r"""The session's theme ``[B, G]`` after a step: empty (0) until the session's first
    click, then the genres of that film (the first clicked in slate order; ``genres`` the
    catalog's ``[n_items, G]`` 0/1 table) for the rest of the session; a new session starts
    it empty again (:func:`~recoworld.simulators.user_state.new_session`). A MovieLens
    session is about something: its films share genres more than the user's taste alone
    explains, and more than the same films in another order (``benchmarks/RESULTS.md``)."""
    start = (theme.sum(1) == 0) & clicked.any(1)
    # Every row's first click, kept where a theme starts: no read of whether one does.
    first = slates.gather(1, clicked.to(torch.uint8).argmax(1, keepdim=True))[:, 0]
    return torch.where(start[:, None], genres[first].to(theme.dtype), theme)


def theme_appeal(weights: torch.Tensor, theme: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""The theme's term of the click utility ``[B, C]``: :math:`\kappa_t\langle w_i, T_b\rangle`
    (``theme_weight`` :math:`\kappa_t`, genre weights ``weights`` ``[B, C, G]`` summing to 1
    per item, theme :math:`T_b` from :func:`session_theme`): a film that shares the genres
    of the session's first click is the likelier click. It is 0 at a session's start, so the
    choice model's fitted probabilities hold there."""
    return config.theme_weight * torch.bmm(weights, theme[:, :, None])[..., 0]


def satiation_build_up(satiation: torch.Tensor, exposure: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""Satiation ``[B, G]`` after one step of exposure :math:`x` (:func:`genre_exposure`):

    .. math:: s \leftarrow (1-\delta)\,s + (1-s)\,\frac{\eta_s x}{1 + \eta_s x}

    with :math:`\delta` = ``satiation_decay`` and :math:`\eta_s` = ``satiation_rate``. The
    build-up has diminishing returns in the exposure (a saturating, Michaelis-Menten form:
    a division, cheaper in the C kernel than an exponential per genre), with no
    cap: a slate that is all one genre wears it more than one that holds a few of its items,
    and that more than one that holds one — so the mix of a slate shows in the satiation,
    step after step. It stays in :math:`[0, 1]` when it starts there
    (:math:`\delta \in [0, 1]`, :math:`\eta_s, x \ge 0`)."""
    c = config
    rated = c.satiation_rate * exposure
    return (1 - c.satiation_decay) * satiation + (1 - satiation) * (rated / (1 + rated))


def satiation_recovery(satiation: torch.Tensor, gap: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""Satiation ``[R, G]`` after a break of ``gap`` ``[R]`` days between sessions:

    .. math:: s \leftarrow s\, e^{-\text{gap}/\tau}

    with :math:`\tau` = ``satiation_recovery_days``: it decays towards 0 with the gap."""
    return satiation * torch.exp(-gap / config.satiation_recovery_days)[:, None]


def item_satiation(items: torch.Tensor, recent_clicks: torch.Tensor, recent_satiation: torch.Tensor) -> torch.Tensor:
    r"""Satiation ``[B, C]`` of the user with each of ``items`` ``[B, C]``: the level
    :math:`\sigma_{bi} = \max_h [\text{recent}_h = i]\,\rho_h` of the item among the user's
    last clicks (``recent_clicks`` ``[B, H]``, newest first, with levels
    ``recent_satiation`` ``[B, H]``), 0 for an item not among them. It lowers the item's
    utility by ``repeat_penalty`` :math:`\sigma_{bi}`: a film just watched is not wanted
    again soon."""
    # [B, H, C]: the max runs across whole rows of items, quicker than along a short last axis.
    match = items[:, None, :] == recent_clicks[:, :, None]
    return torch.where(match, recent_satiation[:, :, None], 0.0).amax(1)


def item_satiation_build_up(level: torch.Tensor, watch: torch.Tensor) -> torch.Tensor:
    r"""The satiation level ``[B, K]`` an item reaches when it is clicked and watched for
    the fraction :math:`\omega`: :math:`\sigma \leftarrow \sigma + (1-\sigma)\,\omega`, from its
    level :math:`\sigma` before the step (:func:`item_satiation`): it builds with each
    viewing and stays in :math:`[0, 1]`."""
    return level + (1 - level) * watch


def item_satiation_decay(recent_satiation: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""The levels ``[B, H]`` of the last clicks after a step, before this step's clicks
    join them: :math:`\rho \leftarrow (1-\delta_i)\,\rho`, :math:`\delta_i` =
    ``item_satiation_decay``."""
    return (1 - config.item_satiation_decay) * recent_satiation


def item_satiation_recovery(recent_satiation: torch.Tensor, gap: torch.Tensor,
                            config: UserEquationsConfig) -> torch.Tensor:
    r"""The levels ``[R, H]`` of the last clicks after a break of ``gap`` ``[R]`` days:
    :math:`\rho \leftarrow \rho\, e^{-\text{gap}/\tau_i}`, :math:`\tau_i` =
    ``item_recovery_days`` (longer than a genre's: one tires of a film for longer than of
    its genre)."""
    return recent_satiation * torch.exp(-gap / config.item_recovery_days)[:, None]


def boredom(examined: torch.Tensor, item_satiation: torch.Tensor) -> torch.Tensor:
    r"""Boredom ``[B]``: the mean satiation of the examined items' genres,
    :math:`\sum_k e_k \langle s, w_k\rangle / \sum_k e_k`.

    Args:
        examined: float ``[B, K]`` (0/1; position 1 is always examined).
        item_satiation: :math:`\langle s, w_k\rangle` ``[B, K]``.
    """
    return (examined * item_satiation).sum(1) / examined.sum(1)


# --------------------------------------------------- interest and familiarity
def consumption(clicked: torch.Tensor, watch: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    r"""What the step consumed in feature space ``[B, D]``: :math:`\sum_k c_k \omega_k f_k`.

    Args:
        clicked: float ``[B, K]`` (0/1).
        watch: watch fractions ``[B, K]``.
        features: ``[B, K, D]``.
    """
    return torch.bmm((clicked * watch)[:, None, :], features)[:, 0]


def interest_drift(interest: torch.Tensor, consumed: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""Interest ``[B, D]`` drifting towards what was consumed (:func:`consumption`):
    :math:`u \leftarrow \mathrm{normalize}(u + \eta_u \sum_k c_k\omega_k f_k)`,
    :math:`\eta_u` = ``interest_drift``."""
    return torch.nn.functional.normalize(interest + config.interest_drift * consumed, dim=1)


def familiarity_update(familiar: torch.Tensor, consumed: torch.Tensor, clicked: torch.Tensor,
                       config: UserEquationsConfig) -> torch.Tensor:
    r"""The user's recent consumption :math:`h` ``[B, D]`` (a unit vector), against which
    novelty is measured; it moves only on a step with a click:

    .. math::

        h \leftarrow \mathrm{normalize}\big((1-\phi)\,h
                     + \phi\,\mathrm{normalize}(\textstyle\sum_k c_k\omega_k f_k)\big)

    with :math:`\phi` = ``familiarity_rate``.

    Args:
        familiar: :math:`h` ``[B, D]``.
        consumed: :func:`consumption` ``[B, D]``.
        clicked: bool ``[B, K]``.
    """
    phi = config.familiarity_rate
    moved = (1 - phi) * familiar + phi * torch.nn.functional.normalize(consumed, dim=1)
    return torch.where(clicked.any(1, keepdim=True), torch.nn.functional.normalize(moved, dim=1), familiar)


def distance_from_familiar(features: torch.Tensor, familiar: torch.Tensor) -> torch.Tensor:
    r"""Distance ``[B, K]`` of items from the user's recent consumption,
    :math:`d_k = 1 - \langle h, f_k\rangle \in [0, 2]`; an item with :math:`d_k > 1` is
    novel to the user.

    Args:
        features: ``[B, K, D]`` unit features.
        familiar: :math:`h` ``[B, D]``.
    """
    return 1.0 - torch.bmm(features, familiar[:, :, None])[..., 0]


# -------------------------------------------------- quality, mindset, memory
def step_enjoyment(clicked: torch.Tensor, rating: torch.Tensor) -> torch.Tensor:
    r"""The step's enjoyment ``[B]``: the summed enjoyment :math:`(\text{rating}_k - 1)/4`
    of the clicked items, 0 when nothing was clicked:

    .. math:: J = \tfrac14 \sum_k c_k (\text{rating}_k - 1)

    The user's own judgement after watching, not the click: a film rated 5 counts 1, one
    rated 1 counts 0.

    Args:
        clicked: float ``[B, K]`` (0/1).
        rating: ratings 1..5 ``[B, K]`` (any dtype; read where clicked).
    """
    return (clicked * (rating.float() - 1)).sum(1) * 0.25


def step_quality(enjoyment: torch.Tensor, compliance: torch.Tensor, in_force: torch.Tensor,
                 config: UserEquationsConfig) -> torch.Tensor:
    r"""The step's quality ``[B]``, concave in the summed enjoyment :math:`J`:

    .. math:: \bar q = \mathrm{clip}\big(1 - e^{-J/\xi} + \kappa_c(\text{compliance} - 0.5),\ 0,\ 1\big)

    for users with an instruction in force (``in_force``), :math:`1 - e^{-J/\xi}` for the
    others; :math:`\xi` = ``quality_scale``, :math:`\kappa_c` = ``compliance_weight``.
    Diminishing returns, not a mean: a second film enjoyed makes a better step than one,
    by less than the first did; a disappointing click adds little, and nothing clicked is
    a step of quality 0.

    Args:
        enjoyment: :math:`J` ``[B]`` (:func:`step_enjoyment`).
        compliance: ``[B]`` (:func:`instruction_compliance`; read where in force).
        in_force: bool ``[B]``.
    """
    value = 1 - torch.exp(-enjoyment / config.quality_scale)
    followed = value + config.compliance_weight * (compliance - 0.5)
    return torch.where(in_force, followed, value).clamp(0, 1)


def mindset_update(mindset: torch.Tensor, quality: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""Mindset ``[B]`` after a step of quality :math:`\bar q`:
    :math:`m \leftarrow (1-\lambda)\,m + \lambda\,\bar q`, :math:`\lambda` = ``mindset_rate``."""
    return (1 - config.mindset_rate) * mindset + config.mindset_rate * quality


def mindset_after_break(mindset: torch.Tensor, baseline: float) -> torch.Tensor:
    r"""Mindset of a returning user at the start of its next session: halfway back to its
    baseline, :math:`m \leftarrow \tfrac12 m + \tfrac12 m_0` (:math:`m_0` the initial
    mindset)."""
    return 0.5 * mindset + 0.5 * baseline


def session_memory_update(mean: torch.Tensor, peak: torch.Tensor, quality: torch.Tensor, session_step: torch.Tensor,
                          config: UserEquationsConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""How the session is remembered after the step numbered ``session_step`` (1 for the
    first of the session) of quality :math:`\bar q`: ``(mean, peak, memory)``, each ``[B]``.

    .. math::

        \bar Q \leftarrow \bar Q + (\bar q - \bar Q)/t_{\text{session}}, \qquad
        P \leftarrow \max(P, \bar q), \qquad
        M = w\,\tfrac12 (P + \bar q) + (1 - w)\,\bar Q

    the running mean :math:`\bar Q` and the peak :math:`P` of the session's step quality
    (both restart at its first step), and the memory :math:`M` of the session were it to
    end now, with :math:`w` = ``peak_end_weight``. The peak-end rule (Fredrickson and
    Kahneman, "Duration neglect in retrospective evaluations of affective episodes", 1993;
    Kahneman et al., "When more pain is preferred to less: adding a better end", 1993):
    an episode is remembered by its best moment and its end, not by its average. ``w = 0``
    remembers the mean. :math:`M` decides the return (:func:`return_decision`).
    """
    first = session_step == 1
    mean = mean + (quality - mean) / session_step
    peak = torch.where(first, quality, torch.maximum(peak, quality))
    w = config.peak_end_weight
    return mean, peak, w * ((peak + quality) * 0.5) + (1 - w) * mean


# ------------------------------------------------------------------- leaving
def leave_hazard(mindset: torch.Tensor, boredom: torch.Tensor, session_step: torch.Tensor, patience: torch.Tensor,
                 session_index: torch.Tensor, config: UserEquationsConfig,
                 sign_up: torch.Tensor | None = None) -> torch.Tensor:
    r"""Leave hazard ``[B]``:

    .. math:: h = \sigma\big(h_0 + h_m(0.5 - m) + h_b\,\text{boredom} + h_\ell\,t_{\text{session}}
              - \pi\,h_\gamma(\gamma - 0.75) + (h_1 - \sigma_1 z^+)\,[\text{first session}]\big)

    (``leave_base``, ``leave_mindset``, ``leave_boredom``, ``leave_length``,
    ``leave_patience``, ``leave_first_session``, ``first_session_spread``): it rises with
    boredom and session length, falls with the mindset and the user's patience
    :math:`\gamma`. A user's first session (``session_index`` 0) is set apart: :math:`h_1`
    shifts it (below 0, a newcomer's first visit lasts longer than the visits they return
    for, as a sign-up's burst of ratings does in MovieLens), :math:`\pi` is
    ``first_session_patience`` in it, 1 in every later session (0: the first visit's length
    owes nothing to the user's habitual patience, as in MovieLens, where it is unrelated to
    the length of the user's later sessions), and :math:`\sigma_1 z^+` lowers it for some
    newcomers, :math:`z` being ``sign_up`` ``[B]``, each user's standard normal sign-up
    draw (:func:`~recoworld.simulators.user_state.sign_up_draw`; needed only where
    :math:`\sigma_1 \neq 0`), and :math:`z^+ = \max(z, 0)`: half of the newcomers keep the
    common level, the others rate a longer burst. One-sided because in MovieLens the
    shorter half of the first sessions is as tight as one common level gives and the
    longer half has a far heavier tail; a spread both ways made short sign-ups too common
    (``benchmarks/RESULTS.md``). The defaults (0, 1 and 0) treat every session alike; the
    calibration fits all three."""
    c = config
    first = session_index == 0
    share = torch.where(first, c.first_session_patience, 1.0) if c.first_session_patience != 1.0 else 1.0
    logit = (c.leave_base + c.leave_mindset * (0.5 - mindset) + c.leave_boredom * boredom
             + c.leave_length * session_step - c.leave_patience * share * (patience - 0.75))
    if c.leave_first_session != 0.0:
        logit = logit + c.leave_first_session * first
    if c.first_session_spread != 0.0:
        logit = logit - c.first_session_spread * sign_up.clamp(min=0) * first
    return torch.sigmoid(logit)


def instruction_countdown(steps_left: torch.Tensor, in_force: torch.Tensor,
                          active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An instruction stays in force for ``instruction_steps`` steps: the steps left
    ``[B]`` after a step shown under the instruction in force (``in_force``), and whether it
    is still in force (``active`` and steps left)."""
    steps_left = steps_left - in_force.long()
    return steps_left, active & (steps_left > 0)


def quick_visit(session_index: torch.Tensor, session_step: torch.Tensor, u_leave: torch.Tensor,
                config: UserEquationsConfig) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Who ends a visit for one thing, and the leave draw for the others (``([B] bool, [B])``).

    A session the user returned for (``session_index`` above 0) is, with probability
    :math:`q` (``quick_visit_share``), a visit for one thing: it ends after its first step
    (``session_step`` 1), whatever the mindset, and without an instruction — in MovieLens a
    quarter of the later sessions hold a single rating, a film just seen, say, where the
    others run their course. The leave draw ``u_leave`` decides it: below :math:`q`, a quick
    visit; from :math:`q` up, rescaled to :math:`(u - q)/(1 - q)`, uniform again, for
    :func:`voice_or_leave`. The default, 0, has no quick visits and leaves ``u_leave`` as it is."""
    q = config.quick_visit_share
    if q == 0.0:
        return torch.zeros_like(session_step, dtype=torch.bool), u_leave
    first_step = (session_index > 0) & (session_step == 1)
    return first_step & (u_leave < q), torch.where(first_step, (u_leave - q) / (1.0 - q), u_leave)


def voice_or_leave(hazard: torch.Tensor, instruction_active: torch.Tensor, u_voice: torch.Tensor,
                   u_leave: torch.Tensor, config: UserEquationsConfig,
                   quick: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Who voices an instruction and who leaves, ``([B], [B])`` bool.

    A user whose hazard exceeds ``instruction_threshold`` senses they are about to leave:
    with probability ``voice_probability`` (if no instruction is in force,
    ``instruction_active`` false) they voice an instruction and stay; otherwise they leave
    with probability :math:`h`. A user ending a quick visit (``quick``, :func:`quick_visit`)
    leaves without a word.

    Args:
        hazard: :math:`h` ``[B]`` (:func:`leave_hazard`).
        instruction_active: bool ``[B]``, after :func:`instruction_countdown`.
        u_voice, u_leave: uniform draws ``[B]`` in :math:`[0, 1)` (``u_leave`` as
            :func:`quick_visit` returns it).
        quick: bool ``[B]``, or ``None`` for none.
    """
    speaks = (hazard > config.instruction_threshold) & ~instruction_active & (u_voice < config.voice_probability)
    if quick is None:
        return speaks, ~speaks & (u_leave < hazard)
    speaks = speaks & ~quick
    return speaks, quick | (~speaks & (u_leave < hazard))


# ----------------------------------------------------------------- returning
def return_probability(session_memory: torch.Tensor, activity: torch.Tensor, session_index: torch.Tensor,
                       config: UserEquationsConfig) -> torch.Tensor:
    r"""Probability ``[B]`` that a user who leaves comes back:
    :math:`\sigma(r_0 + r_m(M - 0.5) + \log a + r_1[\text{first session}])` (``return_base``,
    ``return_mindset``, ``return_first_session``), with :math:`M` the session memory and
    :math:`a` the activity trait; it increases with both. The session that ends being the
    user's first (``session_index`` 0) shifts the odds by :math:`r_1`: in MovieLens fewer
    newcomers come back after their sign-up than regulars after a visit. The default, 0,
    treats every session alike; the calibration fits it."""
    c = config
    logit = c.return_base + c.return_mindset * (session_memory - 0.5) + torch.log(activity)
    if c.return_first_session != 0.0:
        logit = logit + c.return_first_session * (session_index == 0)
    return torch.sigmoid(logit)


def first_gap_law(session_index: torch.Tensor, u_gap: torch.Tensor,
                  config: UserEquationsConfig) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Which returning users take the gap law of a first session, and the uniform each
    draws its gap from (``([B] bool, [B])``).

    After a first session (``session_index`` 0) a share :math:`\pi` (``gap_first_share``)
    of the returning newcomers comes back by the first-session law (the mean scaled by
    :math:`e^{g_1}`, :func:`mean_return_gap`), the others as after a later session: a
    mixture, as MovieLens's newcomers come back either within hours of their sign-up or
    weeks later, like regulars (``benchmarks/RESULTS.md``). The component is chosen by the
    gap's own uniform ``u_gap``: below :math:`\pi`, the first-session law, with ``u_gap``
    rescaled to :math:`u/\pi`; from :math:`\pi` up, the later law with
    :math:`(1 - u)/(1 - \pi)` (in :math:`(0, 1]`: never 0, whose log would make the gap
    infinite); each uniform again, so one draw decides both the component and the gap.
    The default, :math:`\pi = 1`, sends every first-session return to its own law and
    leaves ``u_gap`` as it is."""
    first = session_index == 0
    share = config.gap_first_share
    if share == 1.0:
        return first, u_gap
    own = first & (u_gap < share)
    later = first & ~own
    u = torch.where(own, u_gap / share, u_gap)
    return own, torch.where(later, (1.0 - u_gap) / (1.0 - share), u)


def mean_return_gap(session_memory: torch.Tensor, activity: torch.Tensor, session_length: torch.Tensor,
                    first_law: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""Mean gap ``[B]`` in days before a returning user's next session:
    ``gap_days`` :math:`\,e^{g_1[\text{first law}]}/\,(a\,(0.5 + M)\,L^{\varepsilon})` —
    shorter for active users, good sessions and, with ``gap_length_elasticity``
    :math:`\varepsilon > 0`, long ones (:math:`L`, the session's steps): a user absorbed in
    a long session comes back sooner, as rating sessions do within users
    (``benchmarks/RESULTS.md``). :math:`g_1` (``gap_first_session``) scales the gap of the
    users whose return follows the first-session law (``first_law``, bool: after their first
    session, :func:`first_gap_law`): in MovieLens a newcomer who comes back after the
    sign-up mostly does so within hours, a regular after days. The default, 0, treats every
    session alike; the calibration fits it.

    A mean longer than float32 holds (a huge ``gap_days``, a tiny activity) is
    :data:`LONGEST_GAP`, not infinite, at each factor: a factor that rounds to 0 in float32
    (:math:`e^{g_1}` far below 0, :math:`L^{-\varepsilon}` for a large elasticity) then
    gives a mean of 0, where infinity would give NaN. Such a mean saturates: once a product
    has passed float32, a later factor below 1 (but not 0) multiplies :data:`LONGEST_GAP`,
    not the true product, and the mean is shorter than the equation's (which float32 may
    hold)."""
    # Each clamp is the identity on a finite mean, so a mean float32 holds keeps its bits;
    # the C kernel (users_step.c) clamps at the same places.
    mean = (config.gap_days / (activity * (0.5 + session_memory))).clamp_(max=LONGEST_GAP)
    if config.gap_first_session != 0.0:
        mean = (mean * torch.exp(config.gap_first_session * first_law.to(mean.dtype))).clamp_(max=LONGEST_GAP)
    if config.gap_length_elasticity == 0.0:
        return mean
    return mean * torch.pow(session_length.clamp_min(1).to(mean.dtype), -config.gap_length_elasticity)


def return_gap(mean_gap: torch.Tensor, u_gap: torch.Tensor, config: UserEquationsConfig) -> torch.Tensor:
    r"""The gap ``[B]`` drawn from a Weibull law of mean ``mean_gap`` and shape :math:`k` =
    ``gap_shape`` by inversion of the uniform ``u_gap`` in :math:`(0, 1]`:

    .. math:: \text{gap} = \frac{\bar g}{\Gamma(1 + 1/k)}\,(-\log u)^{1/k}

    :math:`k = 1` is the exponential, :math:`-\bar g \log u` (computed so, exactly); a shape
    below 1 gives the heavy tail of real gaps between sessions — many returns within days,
    some after months — at the same mean. A gap longer than float32 holds (a huge
    ``gap_days``, a far tail) is :data:`LONGEST_GAP`, not infinite: an infinite gap stands
    for a user who churned. So is a mean past it, and the scale :math:`\bar g/\Gamma(1 + 1/k)`:
    a draw whose factor :math:`(-\log u)^{1/k}` is 0 (:math:`u` = 1, or :math:`u` near 1
    for a small shape) is then a gap of 0, not NaN. Such gaps saturate: where the mean or
    the scale is :data:`LONGEST_GAP` and the draw's factor is below 1, the gap is
    :data:`LONGEST_GAP` times that factor, not the true scale times it, which is longer.

    A gap of 0 is a return at once, not an error: a mean of 0 (:func:`mean_return_gap`, at
    extreme parameters) or a factor that rounds to 0 gives it. The user's next session
    starts at the next step, as after any gap, with its mindset halfway back to its baseline
    (:func:`mindset_after_break`); ``returned`` says that the user returns (a gap's value
    never does); and its satiation, multiplied by :math:`e^{-0} = 1`, does not recover."""
    # The clamps are the identity on finite numbers (a mean and gap float32 holds keep their
    # bits); the C kernel (users_step.c) clamps at the same places.
    mean_gap = mean_gap.clamp(max=LONGEST_GAP)
    k = config.gap_shape
    if k == 1.0:
        gap = -mean_gap * torch.log(u_gap)
    else:
        gap = (mean_gap * weibull_mean_factor(k)).clamp_(max=LONGEST_GAP) * torch.pow(-torch.log(u_gap), 1.0 / k)
    return gap.clamp_(max=LONGEST_GAP)


def return_decision(leaves: torch.Tensor, session_memory: torch.Tensor, activity: torch.Tensor,
                    session_length: torch.Tensor, session_index: torch.Tensor, u_return: torch.Tensor,
                    u_gap: torch.Tensor, config: UserEquationsConfig) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Who of the leavers returns, and the gap ``([B] bool, [B] days)``: a leaver returns
    when ``u_return`` :math:`<` :func:`return_probability`, after :func:`return_gap` of
    :func:`mean_return_gap` days, by the law :func:`first_gap_law` picks; a leaver who does
    not return churns (gap :math:`\infty`); a user who stays has gap 0.

    Args:
        leaves: bool ``[B]``.
        session_memory: :math:`M` ``[B]`` (:func:`session_memory_update`).
        activity: :math:`a` ``[B]``.
        session_length: the steps of the session that ends ``[B]``.
        session_index: the index of the session that ends ``[B]`` (0: the user's first).
        u_return, u_gap: uniform draws ``[B]``, ``u_gap`` in :math:`(0, 1)`.
    """
    gap = torch.where(leaves, torch.inf, 0.0)
    returned = leaves & (u_return < return_probability(session_memory, activity, session_index, config))
    first_law, u_gap = first_gap_law(session_index, u_gap, config)
    mean_gap = mean_return_gap(session_memory, activity, session_length, first_law, config)
    gap = torch.where(returned, return_gap(mean_gap, u_gap, config), gap)
    return returned, gap


# -------------------------------------------------------------- instructions
def instruction_compliance(instruction: Instruction, genres: torch.Tensor, novel: torch.Tensor,
                           more_share: float) -> torch.Tensor:
    """Compliance ``[R]`` of slates with instructions: the mean of the applicable parts —
    share of items outside ``less``, share of items in ``more`` relative to ``more_share``
    (capped at 1), share of ``novel`` items for ``novelty=+1`` or of familiar ones for
    ``-1``; 0 for an instruction with no part.

    Args:
        instruction: ``R`` instructions.
        genres: bool ``[R, K, G]`` genres of the slates' items.
        novel: bool ``[R, K]`` items far from the user's recent consumption
            (:func:`distance_from_familiar` above 1).
        more_share: the share of ``more`` items that counts as full compliance.
    """
    has_less, has_more = instruction.less.any(1), instruction.more.any(1)
    in_less = (genres & instruction.less[:, None, :]).any(-1).float().mean(1)
    in_more = (genres & instruction.more[:, None, :]).any(-1).float().mean(1)
    share_novel = novel.float().mean(1)
    wants = instruction.novelty.float()
    parts = torch.stack([
        torch.where(has_less, 1.0 - in_less, 0.0),
        torch.where(has_more, (in_more / more_share).clamp(max=1.0), 0.0),
        torch.where(wants > 0, share_novel, torch.where(wants < 0, 1.0 - share_novel, 0.0)),
    ], 1)
    count = torch.stack([has_less, has_more, wants != 0], 1).float().sum(1)
    return parts.sum(1) / count.clamp_min(1.0)
