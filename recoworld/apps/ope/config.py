"""The settings of ``recoworld ope`` (:mod:`recoworld.apps.ope.study`): the grid, the world,
and the logging and target policies it compares."""

from __future__ import annotations

from dataclasses import dataclass, field

from recoworld import ope
from recoworld.agents.baselines import MostPopularAgent
from recoworld.agents.logging_policies import EpsilonSoft, SoftmaxPolicy
from recoworld.agents.off_policy import OBJECTIVES
from recoworld.apps.ope.sessions import SESSION_ESTIMATORS
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, OPEN_UNIT, POSITIVE, UNIT, Interval, check_fields
from recoworld.ope.base import check_resamples

#: Held-out users are seeded from here on; logs use seeds below it.
TRUTH_SEED = 10**9
#: The training logs of the learned targets are seeded here: no evaluation log shares them.
LEARNING_SEED = 10**6
LOGGING_POLICIES = ("uniform", "epsilon_soft", "softmax")
TARGET_POLICIES = ("greedy", "softmax")
LEARNED_POLICIES = tuple(f"learned_{objective}" for objective in OBJECTIVES)
ESTIMATORS = {
    "IPS": ope.SlateIPS(), "SNIPS": ope.SelfNormalizedSlateIPS(),
    "IIPS": ope.SlateIndependentIPS(), "SNIIPS": ope.SelfNormalizedSlateIndependentIPS(),
    "RIPS": ope.SlateRewardInteractionIPS(), "SNRIPS": ope.SelfNormalizedSlateRewardInteractionIPS(),
    "DM": ope.SlateDM(), "CascadeDR": ope.SlateCascadeDR(),
}

#: The log's per-position column behind each reward a slate log can be evaluated on: the
#: item signals of :mod:`recoworld.rewards`, each a sum over the slate's positions.
REWARD_COLUMNS = {"clicks": "clicked", "watch_time": "watch_fraction", "likes": "liked"}


@dataclass
class StudyConfig:
    """The grid and the world of the study (flags of ``recoworld ope`` in brackets).

    The default is a quick study; ``--log-sizes 500 2000 8000 --seeds 50 --truth-users
    100000 --session-log-sizes 500 2000 --session-seeds 50`` is a fuller one (see
    ``benchmarks/RESULTS.md`` for their running times).
    """

    logging: tuple[str, ...] = LOGGING_POLICIES        # --logging
    targets: tuple[str, ...] = TARGET_POLICIES         # --targets
    log_sizes: tuple[int, ...] = (500, 2000)           # --log-sizes
    seeds: int = 10                                    # --seeds: logs per (logging, n)
    n_items: int = 200                                 # --n-items: synthetic catalog
    num_candidates: int = 10                           # --candidates: C
    slate_size: int = 3                                # --slate-size: K
    epsilon: float = 0.3                               # --epsilon of the epsilon-soft logger
    logging_temperature: float = 1.0                   # --logging-temperature
    target_temperature: float = 0.5                    # --target-temperature
    truth_users: int = 20_000                          # --truth-users
    truth_draws: int = 4                               # --truth-draws per user (stochastic targets)
    n_bootstrap: int = 200                             # --bootstrap
    alpha: float = 0.05                                # --alpha
    n_folds: int = 5                                   # --folds of the click model
    n_refits: int = 20                                 # --refits: click-model refits behind DM's and cascade DR's CI
    reward: str = "clicks"                             # the value estimated (ope evaluate: the run's env.reward)
    estimators: tuple[str, ...] = field(default_factory=lambda: tuple(ESTIMATORS))
    learned: tuple[str, ...] = OBJECTIVES              # --learned objectives (none: --learned with no value)
    sessions: bool = True                              # --no-sessions skips the session section
    horizon: int = 5                                   # --horizon H: steps per logged episode
    session_logging: tuple[str, ...] = ("epsilon_soft", "softmax")  # --session-logging
    session_log_sizes: tuple[int, ...] = (500,)        # --session-log-sizes: trajectories per log
    session_seeds: int = 5                             # --session-seeds
    session_refits: int = 6                            # --session-refits: Q-function refits behind DR/WDR/FQE's CI
    session_candidates: int = 5                        # --session-candidates: C of the session world
    session_slate_size: int = 2                        # --session-slate-size: K of the session world
    session_truth_users: int = 20_000                  # --session-truth-users: on-policy Monte Carlo
    session_estimators: tuple[str, ...] = field(default_factory=lambda: tuple(SESSION_ESTIMATORS))

    #: Ranges of the numbers the checks below do not cover (:mod:`recoworld.config_checks`):
    #: a standard error needs two truth users, a logging policy must give every slate some
    #: chance (temperature > 0), cross-fitting needs two folds, an episode a step, and a
    #: request a candidate and a slate an item.
    RANGES = {"n_items": AT_LEAST_ONE, "epsilon": UNIT, "logging_temperature": POSITIVE,
              "target_temperature": NON_NEGATIVE, "truth_users": Interval(2), "truth_draws": AT_LEAST_ONE,
              "alpha": OPEN_UNIT, "n_folds": Interval(2), "horizon": AT_LEAST_ONE,
              **dict.fromkeys(("num_candidates", "slate_size", "session_candidates", "session_slate_size"),
                              AT_LEAST_ONE),
              "session_truth_users": Interval(2)}

    def __post_init__(self):
        check_fields(self, self.RANGES)
        # before any log is drawn, not at the first interval of a long study
        check_resamples(self.n_bootstrap, self.alpha, "StudyConfig.n_bootstrap")
        for name in ("logging", "targets", "estimators", "log_sizes", "learned", "session_logging",
                     "session_log_sizes", "session_estimators"):
            given = list(getattr(self, name))
            twice = sorted({g for g in given if given.count(g) > 1}, key=str)
            if twice:
                # A repeated cell would be run again and counted as another, independent one.
                raise ValueError(f"{self.setting(name)} names {', '.join(map(str, twice))} more than once; "
                                 "give each once")
        for name, allowed in (("logging", LOGGING_POLICIES), ("targets", TARGET_POLICIES),
                              ("estimators", tuple(ESTIMATORS)), ("session_logging", LOGGING_POLICIES),
                              ("session_estimators", tuple(SESSION_ESTIMATORS))):
            given = getattr(self, name)
            if not given or any(g not in allowed for g in given):
                raise ValueError(f"{self.setting(name)}; choose one or more of {list(allowed)}")
        if self.reward not in REWARD_COLUMNS:
            raise ValueError(f"{self.setting('reward')}; choose one of {list(REWARD_COLUMNS)}, the rewards a slate log "
                             "holds per position")
        if any(g not in OBJECTIVES for g in self.learned):
            raise ValueError(f"{self.setting('learned')}; choose none or more of {list(OBJECTIVES)}")
        if not self.log_sizes or min(self.log_sizes) < self.n_folds:
            raise ValueError(f"{self.setting('log_sizes')}; each log needs at least as many rounds as "
                             f"{self.setting('n_folds')}, one per fold of the click model: give sizes of "
                             f"{self.n_folds} or more, or a smaller StudyConfig.n_folds")
        if not self.session_log_sizes or min(self.session_log_sizes) < 2:
            example = self.setting("session_log_sizes", StudyConfig.session_log_sizes)
            raise ValueError(f"{self.setting('session_log_sizes')}; each session log needs at least 2 trajectories "
                             f"(2 folds of the Q-function), e.g. {example}")
        for name, why in (("seeds", "bias and RMSE need at least 2 logs per cell"),
                          ("session_seeds", "bias and RMSE need at least 2 logs per cell"),
                          ("n_refits", "a standard error needs at least 2 refits"),
                          ("session_refits", "a standard error needs at least 2 refits")):
            if getattr(self, name) < 2:
                example = self.setting(name, getattr(StudyConfig, name))  # the default
                raise ValueError(f"{self.setting(name)}; {why}, e.g. {example}")
        for slate, candidates in (("slate_size", "num_candidates"), ("session_slate_size", "session_candidates")):
            self._check_at_most(slate, candidates, "a slate shows distinct candidates")
            self._check_at_most(candidates, "n_items", "the candidates are distinct items of the catalog")

    def setting(self, name: str, value=None) -> str:
        """``StudyConfig.name=value`` (``value`` by default the field's own; a tuple as a list):
        how every message of the config names a setting, the one form that
        :func:`recoworld.apps.ope.options.as_flags` turns into the flag that gave it
        (``--log-sizes 500 2000``) when the command line built the config."""
        value = getattr(self, name) if value is None else value
        return f"StudyConfig.{name}={list(value) if isinstance(value, tuple) else value!r}"

    def _check_at_most(self, smaller: str, larger: str, why: str) -> None:
        """Refuse ``smaller`` above ``larger`` (two size fields), with the fix."""
        if getattr(self, smaller) > getattr(self, larger):
            raise ValueError(f"{self.setting(smaller)} > {self.setting(larger)}; {why}: give "
                             f"StudyConfig.{smaller} <= {getattr(self, larger)} or a larger StudyConfig.{larger}")


def make_policy(name: str, config: StudyConfig, role: str):
    """A logging (``role="logging"``) or target policy of the study, by name; all score by popularity."""
    base = MostPopularAgent()
    if role == "logging":
        policies = {"uniform": lambda: EpsilonSoft(base=base, epsilon=1.0),
                    "epsilon_soft": lambda: EpsilonSoft(base=base, epsilon=config.epsilon),
                    "softmax": lambda: SoftmaxPolicy(base=base, temperature=config.logging_temperature)}
    else:
        policies = {"greedy": lambda: SoftmaxPolicy(base=base, temperature=0.0),
                    "softmax": lambda: SoftmaxPolicy(base=base, temperature=config.target_temperature)}
    policy = policies[name]()
    policy.name = name
    return policy
