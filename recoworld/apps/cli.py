"""The ``recoworld`` command: a small table of subcommands.

    recoworld run [HYDRA OVERRIDES...]                 run an experiment (recoworld run --help)
    recoworld data fetch movielens-100k|open-bandit    download a data set into the cache
    recoworld calibrate [--data PATH]                  fit the statistical users to MovieLens-100K or a log
    recoworld fidelity                                 how closely simulated users match held-out ratings
    recoworld ope [--out DIR] [--obd]                  estimator study against the simulator's true values
    recoworld ope evaluate --log PATH --policy POLICY  your policy's value on your log, estimator chosen by simulation
    recoworld robustness [--quick] [OVERRIDES...]      the agents' ranking across the unidentified parameters
    recoworld view RUN_DIR                             a self-contained HTML page to follow a run's users
    recoworld export minari RUN_DIR [--dataset-id ID]  a run's log as a Minari dataset for offline RL
    recoworld merge DIR... [--out DIR] [--metric M]    a sweep's runs in one table, intervals across seeds
    recoworld --version                                the installed version

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

    try:
        return main(argv)
    except KeyboardInterrupt:
        # A world is saved whole once its fit ends, and a refit replaces the old one only then.
        print("recoworld calibrate: stopped before the fit ended; nothing was written (a world already at --out is "
              "as it was): run it again", file=sys.stderr)
        raise


def _fidelity(argv: Sequence[str]) -> int:
    from recoworld.apps.fidelity.report import main

    return main(argv)


def _ope(argv: Sequence[str]) -> int:
    if argv and argv[0] == "evaluate":
        from recoworld.apps.ope.evaluate import main as evaluate

        return evaluate(argv[1:])
    from recoworld.apps.ope.study import main

    return main(argv)


def _robustness(argv: Sequence[str]) -> int:
    from recoworld.apps.robustness.app import main

    return main(argv)


def _view(argv: Sequence[str]) -> int:
    from recoworld.apps.view.app import main

    return main(argv)


def _export(argv: Sequence[str]) -> int:
    from recoworld.apps.export import main

    return main(argv)


def _merge(argv: Sequence[str]) -> int:
    from recoworld.apps.merge import main

    return main(argv)


#: name -> (summary, entry point taking the arguments after the name).
COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "run": ("run agents against simulated users (Hydra overrides; --help for the config)", _run),
    "data": ("manage data sets: data fetch movielens-100k | open-bandit", _data),
    "calibrate": ("fit the statistical users to MovieLens-100K (or your log: --data PATH) and save the world",
                  _calibrate),
    "fidelity": ("write the fidelity report of the calibrated users on held-out ratings", _fidelity),
    "ope": ("study OPE estimators against the simulator's truth; ope evaluate: your policy on your log", _ope),
    "robustness": ("does the agents' ranking hold across the parameters no data identifies (--quick)", _robustness),
    "view": ("write a self-contained HTML page to follow a run's users session by session", _view),
    "export": ("export a run's log: export minari RUN_DIR (an offline-RL dataset)", _export),
    "merge": ("merge a sweep's metrics.json into one table with intervals across seeds, and a plot", _merge),
}
PLANNED: tuple[str, ...] = ()


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: recoworld <command> [arguments...]", "       recoworld --version", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (summary, _) in COMMANDS.items()]
    lines += ["", "Run 'recoworld <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: ``sys.argv[1:]``) to a subcommand; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from recoworld import __version__

        print(f"recoworld {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        hint = " (not available yet)" if name in PLANNED else ""
        print(f"recoworld: unknown command {name!r}{hint}; choose one of: {', '.join(COMMANDS)}\n\n{usage()}",
              file=sys.stderr)
        return 2
    from recoworld.apps.interrupts import kill_stops_like_ctrl_c

    try:
        # kill (a scheduler's time limit, docker stop) stops every command as Ctrl-C does: it
        # says what it kept or that nothing was written, and removes its temporaries.
        with kill_stops_like_ctrl_c():
            return COMMANDS[name][1](rest)
    except KeyboardInterrupt:
        # The command has said what it kept (a run names experiment.resume=true); a
        # traceback would only hide that. 130 is the shell's status for Ctrl-C.
        command = "ope evaluate" if rest[:1] == ["evaluate"] and name == "ope" else name
        print(f"recoworld {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
