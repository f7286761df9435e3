"""The ``recoworld`` command: a small table of subcommands.

    recoworld run [HYDRA OVERRIDES...]                 run an experiment (recoworld run --help)
    recoworld data fetch movielens-100k|open-bandit    download a data set into the cache
    recoworld calibrate                                fit the statistical users to MovieLens-100K
    recoworld fidelity                                 how closely simulated users match held-out ratings
    recoworld ope [--out DIR] [--obd]                  estimator study against the simulator's true values

Each subcommand imports its (torch-heavy) machinery only when it runs. A new subcommand is
one entry of :data:`COMMANDS`: a one-line summary and a function that takes the remaining
arguments and returns the exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def _run(argv: Sequence[str]) -> int:
    from recoworld.apps.run.app import main

    return main(argv)


def _data(argv: Sequence[str]) -> int:
    from recoworld.data.fetch import main

    return main(argv)


def _calibrate(argv: Sequence[str]) -> int:
    from recoworld.apps.calibrate.fit import main

    return main(argv)


def _fidelity(argv: Sequence[str]) -> int:
    from recoworld.apps.fidelity.report import main

    return main(argv)


def _ope(argv: Sequence[str]) -> int:
    from recoworld.apps.ope.study import main

    return main(argv)


#: name -> (summary, entry point taking the arguments after the name).
COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "run": ("run agents against simulated users (Hydra overrides; --help for the config)", _run),
    "data": ("manage data sets: data fetch movielens-100k | open-bandit", _data),
    "calibrate": ("fit the statistical users to MovieLens-100K and cache the calibrated world", _calibrate),
    "fidelity": ("write the fidelity report of the calibrated users on held-out ratings", _fidelity),
    "ope": ("study off-policy estimators against the simulator's true values (--obd: Open Bandit sample)", _ope),
}
PLANNED: tuple[str, ...] = ()


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: recoworld <command> [arguments...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (summary, _) in COMMANDS.items()]
    lines += ["", "Run 'recoworld <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: ``sys.argv[1:]``) to a subcommand; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        hint = " (not available yet)" if name in PLANNED else ""
        print(f"recoworld: unknown command {name!r}{hint}; choose one of: {', '.join(COMMANDS)}\n\n{usage()}",
              file=sys.stderr)
        return 2
    return COMMANDS[name][1](rest)


if __name__ == "__main__":
    sys.exit(main())
