"""The command line of ``recoworld ope``: its flags, and the :class:`StudyConfig` they give."""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import fields
from pathlib import Path

from recoworld.agents.off_policy import OBJECTIVES
from recoworld.apps.ope.config import ESTIMATORS, LOGGING_POLICIES, TARGET_POLICIES, StudyConfig
from recoworld.apps.ope.sessions import SESSION_ESTIMATORS

#: Flags named as the config field they set (``--truth-users`` sets ``truth_users``), with their type.
SIMPLE_FLAGS = {"seeds": int, "n_items": int, "slate_size": int, "epsilon": float, "logging_temperature": float,
                "target_temperature": float, "truth_users": int, "truth_draws": int, "alpha": float, "horizon": int,
                "session_seeds": int, "session_refits": int, "session_candidates": int, "session_slate_size": int,
                "session_truth_users": int}
#: Config fields given as lists on the command line and kept as tuples.
TUPLE_FIELDS = ("logging", "targets", "estimators", "log_sizes", "learned", "session_logging", "session_log_sizes",
                "session_estimators")
#: Config fields whose flag has another name (``--bootstrap`` sets ``n_bootstrap``).
RENAMED_FLAGS = {"num_candidates": "candidates", "n_bootstrap": "bootstrap", "n_folds": "folds", "n_refits": "refits"}
#: A setting as :meth:`StudyConfig.setting` names it in a message, its value (a list, or a
#: number up to the punctuation after it) optional.
_SETTING = re.compile(r"StudyConfig\.(\w+)(?:=(\[[^\]]*\]|[^\s;:,)]+))?")


def parser() -> argparse.ArgumentParser:
    """The flags of ``recoworld ope`` (see ``--help``)."""
    defaults = StudyConfig()
    parser = argparse.ArgumentParser(
        prog="recoworld ope",
        description="Estimator study: logs from simulated users under several logging policies, every slate "
                    "estimator's bias, RMSE and bootstrap-CI coverage against the simulator's true value.",
        epilog="A fuller study: --log-sizes 500 2000 8000 --seeds 50 --truth-users 100000 --session-log-sizes 500 "
               "2000 --session-seeds 50. --no-sessions skips the multi-step section. Your policy on your log: "
               "recoworld ope evaluate --log PATH --policy POLICY (see recoworld ope evaluate --help).")
    parser.add_argument("--out", type=Path, default=Path("ope_study"), help="output directory (default: ope_study)")
    parser.add_argument("--logging", nargs="+", default=list(defaults.logging), choices=LOGGING_POLICIES)
    parser.add_argument("--targets", nargs="+", default=list(defaults.targets), choices=TARGET_POLICIES)
    parser.add_argument("--estimators", nargs="+", default=list(defaults.estimators), choices=list(ESTIMATORS))
    parser.add_argument("--log-sizes", nargs="+", type=int, default=list(defaults.log_sizes))
    parser.add_argument("--learned", nargs="*", default=list(defaults.learned), choices=OBJECTIVES,
                        help="objectives of the policies learned from each logging policy (none: no learned targets)")
    parser.add_argument("--no-sessions", action="store_true", help="skip the multi-step session section")
    parser.add_argument("--session-logging", nargs="+", default=list(defaults.session_logging),
                        choices=LOGGING_POLICIES)
    parser.add_argument("--session-log-sizes", nargs="+", type=int, default=list(defaults.session_log_sizes),
                        help="trajectories per session log")
    parser.add_argument("--session-estimators", nargs="+", default=list(defaults.session_estimators),
                        choices=list(SESSION_ESTIMATORS))
    for name, kind in SIMPLE_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name),
                            help=f"(default: {getattr(defaults, name)})")
    parser.add_argument("--candidates", type=int, default=defaults.num_candidates, help="candidates per request C")
    parser.add_argument("--bootstrap", type=int, default=defaults.n_bootstrap, help="bootstrap resamples per CI")
    parser.add_argument("--folds", type=int, default=defaults.n_folds, help="cross-fitting folds of the click model")
    parser.add_argument("--refits", type=int, default=defaults.n_refits,
                        help="click-model refits behind the intervals of DM and cascade DR (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default: 1)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--obd", action="store_true",
                        help="add the Open Bandit Dataset section (recoworld.data.obd.obd_study; downloads the sample)")
    parser.add_argument("--obd-cache-dir", type=Path, default=None, help="data cache for --obd")
    parser.add_argument("--obd-mc", type=int, default=10_000, help="Monte-Carlo draws of the Bernoulli-TS policy (--obd)")
    return parser


def study_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> StudyConfig:
    """The :class:`StudyConfig` of parsed ``args``; a setting it refuses is a usage error."""
    values = {f.name: getattr(args, f.name) for f in fields(StudyConfig) if hasattr(args, f.name)}
    values.update({name: getattr(args, flag) for name, flag in RENAMED_FLAGS.items()})
    values["sessions"] = not args.no_sessions
    for name in TUPLE_FIELDS:
        values[name] = tuple(values[name])
    for flag in ("threads", "obd_mc"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}; give 1 or more")
    try:
        return StudyConfig(**values)
    except ValueError as error:
        parser.error(as_flags(str(error)))


def as_flags(message: str) -> str:
    """A message of :class:`StudyConfig` in the command line's terms: each setting it names
    as the flag that gave it, with the value as typed (``StudyConfig.n_bootstrap=0`` reads
    ``--bootstrap 0``, ``StudyConfig.log_sizes=[3, 3]`` reads ``--log-sizes 3 3``); the
    config's own messages name the fields, as a Python caller gives them."""
    def as_typed(setting: re.Match) -> str:
        name, value = setting[1], setting[2]
        flag = "--" + RENAMED_FLAGS.get(name, name).replace("_", "-")
        if value is None:
            return flag
        if value.startswith("["):
            value = " ".join(map(str, ast.literal_eval(value)))
        return f"{flag} {value}"

    return _SETTING.sub(as_typed, message)
