"""``recoworld robustness``: the command line of the robustness study (``--help``).

A study records each world as it finishes in its ``--out`` folder
(:mod:`~recoworld.apps.robustness.studydir`); ``--resume DIR`` continues a stopped one with
the settings it was started with. Flags given with ``--resume`` must repeat them (the whole
command of the study, ``--out`` replaced by ``--resume``), or be left out.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from recoworld.apps.robustness.space import DEFAULT_RANGES, SAMPLERS, SCALES, ParameterRange, ParameterSpace
from recoworld.apps.robustness.study import QUICK, REWARD_PER_STEP, RobustnessConfig
from recoworld.apps.robustness.studydir import StudyDirectory, held_study, settings_of
from recoworld.apps.run.checks import config_differences
from recoworld.apps.interrupts import kill_stops_like_ctrl_c
from recoworld.logs import check_new_folder

EPILOG = """\
The configured world is recoworld run's: Hydra overrides after the flags choose it, e.g.
  recoworld robustness --quick world=synthetic
  recoworld robustness world=movielens 'simulator.population={patience: low}'
  recoworld robustness --parameters leave_mindset,return_mindset --range return_mindset=1:12
  recoworld robustness --show-ranges > ranges.yaml; recoworld robustness --ranges ranges.yaml
  recoworld robustness --resume outputs/robustness/2025-01-31/12-00-00   # a stopped study, where it stopped
"""


def parser() -> argparse.ArgumentParser:
    d = RobustnessConfig()
    p = argparse.ArgumentParser(
        prog="recoworld robustness", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Does the agents' ranking hold across the plausible values of the parameters the data cannot "
                    "identify? Draws K worlds from their ranges, runs the lineup in each, and reports Kendall's tau "
                    "against the configured world's ranking and which parameters move it.")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of recoworld run's config (the configured world)")
    p.add_argument("--quick", action="store_true",
                   help=f"a small study ({', '.join(f'{k}={v}' for k, v in QUICK.items())}) unless set below")
    p.add_argument("--worlds", type=int, help=f"K, the worlds drawn from the ranges (default: {d.worlds})")
    p.add_argument("--users", type=int, help=f"users served at once (default: {d.users})")
    p.add_argument("--steps", type=int, help=f"batched steps per rollout (default: {d.steps})")
    p.add_argument("--seeds", type=_ints, default=tuple(d.seeds), help="rollout seeds, comma-separated (default: 0)")
    p.add_argument("--agents", type=_names, default=tuple(d.agents),
                   help=f"configs of conf/agent/, comma-separated (default: {','.join(d.agents)})")
    p.add_argument("--metric", default=d.metric,
                   help=f"what ranks the agents: {REWARD_PER_STEP} or a metric of recoworld.metrics.METRICS")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler, help="lhs (Latin hypercube) or sobol")
    p.add_argument("--sample-seed", type=int, default=d.sample_seed, help="seed of the draw of the worlds")
    p.add_argument("--ranges", type=Path, help="YAML file {parameter: {low, high, scale, why}} replacing the defaults")
    p.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH[:SCALE]",
                   help=f"set one parameter's range (scale: {' or '.join(SCALES)}); repeatable")
    p.add_argument("--parameters", type=_names, help="vary only these parameters, comma-separated")
    p.add_argument("--no-one-at-a-time", action="store_true", help="skip the one-at-a-time sweep")
    p.add_argument("--seed-noise", type=int, default=d.seed_noise,
                   help="worlds that run the configured world with other users, the noise floor: 0 (none) or 2 "
                        "or more (default: %(default)s)")
    p.add_argument("--show-ranges", action="store_true", help="print the ranges as YAML and exit")
    p.add_argument("--out", type=Path, help="new study folder, which holds the report in the end "
                                            "(default: outputs/robustness/DATE/TIME)")
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the stopped study in DIR (its --out) with the settings it was started with; "
                        "its finished worlds are not run again")
    return p


def given_flags(argv: Sequence[str]) -> set[str]:
    """The destinations of the flags (and ``overrides``) that ``argv`` sets, at their default or not."""
    p = parser()
    for action in p._actions:  # set_defaults(SUPPRESS) would set them all, as the string "==SUPPRESS=="
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_intermixed_args(argv)))


def resumed_settings(directory: StudyDirectory, args: argparse.Namespace, given: set[str]
                     ) -> tuple[RobustnessConfig, list[str]]:
    """The config and overrides of the stopped study in ``directory``; flags given beside
    ``--resume`` must give the same (``ValueError`` names what differs)."""
    path = directory.path
    if "out" in given and args.out.resolve() != path.resolve():
        raise ValueError(f"--out {args.out} with --resume {path}: a resumed study writes its report into its own "
                         "folder; drop --out")
    config, overrides = directory.settings
    if given - {"resume", "out", "show_ranges"}:
        differences, _ = config_differences(settings_of(config, overrides), settings_of(config_from(args),
                                                                                        args.overrides))
        if differences:
            raise ValueError(f"--resume {path}: the study there was started with other settings than these flags "
                             f"give ({'; '.join(differences)}); give --resume {path} alone to continue it as it was "
                             "started, or start a new study with these flags and another --out")
    return config, overrides


def config_from(args: argparse.Namespace) -> RobustnessConfig:
    """The study's config from the parsed flags (``ValueError`` names a bad one)."""
    ranges = dict(DEFAULT_RANGES) if args.ranges is None else read_ranges(args.ranges)
    set_here = {}
    for text in args.range:
        name, spec = parse_range(text)
        ranges[name] = set_here[name] = spec
    if args.parameters is not None:
        unknown = [n for n in args.parameters if n not in ranges]
        if unknown:
            raise ValueError(f"--parameters names {unknown[0]!r}, which has no range; ranges: {', '.join(ranges)} "
                             f"(add one with --range {unknown[0]}=LOW:HIGH)")
        # A range set for a parameter the study does not vary would be dropped unseen (a typo in either flag).
        left_out = [n for n in set_here if n not in args.parameters]
        if left_out:
            ParameterSpace({n: set_here[n] for n in left_out})  # a misspelt name: "did you mean"
            raise ValueError(f"--range sets {left_out[0]}, but --parameters {','.join(args.parameters)} leaves it "
                             f"out; add {left_out[0]} to --parameters, or drop that --range")
        ranges = {n: ranges[n] for n in args.parameters}
    sizes = {**(QUICK if args.quick else {}),
             **{k: getattr(args, k) for k in ("worlds", "users", "steps") if getattr(args, k) is not None}}
    return RobustnessConfig(agents=args.agents, seeds=args.seeds, metric=args.metric, sampler=args.sampler,
                            sample_seed=args.sample_seed, one_at_a_time=not args.no_one_at_a_time,
                            seed_noise=args.seed_noise, ranges=ranges, **sizes)


def read_ranges(path: Path) -> dict:
    """The ranges of the YAML file ``path`` (``--show-ranges`` writes one), as a mapping."""
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    if not path.is_file():
        raise ValueError(f"--ranges {path}: no such file; write one with recoworld robustness --show-ranges > {path}")
    try:
        ranges = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as error:
        raise ValueError(f"--ranges {path} is not readable YAML ({error}); it maps parameters to "
                         "{low, high, scale, why}, as --show-ranges prints them") from None
    if not isinstance(ranges, dict):
        raise ValueError(f"{path} holds {type(ranges).__name__}; it must map parameters to {{low, high, scale, why}}")
    return ranges


def parse_range(text: str) -> tuple[str, ParameterRange]:
    """``NAME=LOW:HIGH[:SCALE]`` as ``(name, range)``."""
    name, _, spec = text.partition("=")
    parts = spec.split(":")
    try:
        if not name or len(parts) not in (2, 3):
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--range {text!r}; write NAME=LOW:HIGH or NAME=LOW:HIGH:SCALE, "
                         "e.g. leave_mindset=1:8 or exposure_odds=1:15:log") from None
    return name, ParameterRange(low, high, parts[2] if len(parts) == 3 else "linear", "set on the command line")


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the study and write the report; returns the exit status (2 for a bad setting)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    args = p.parse_intermixed_args(argv)
    directory = None
    try:
        directory = None if args.resume is None else StudyDirectory.open(args.resume)
        if directory is None:
            config, overrides = config_from(args), args.overrides
        else:
            config, overrides = resumed_settings(directory, args, given_flags(argv))
        space = config.check()
        if args.show_ranges:
            print(OmegaConf.to_yaml(space.to_dict()), end="")
            return 0
        out = args.resume or args.out or Path("outputs/robustness") / time.strftime("%Y-%m-%d/%H-%M-%S")
        if directory is None:
            held = held_study(out)
            if held:
                raise ValueError(f"--out {out} holds {held}, or choose another --out")
            out = check_new_folder(out)
    except ValueError as error:
        if directory is not None:
            directory.release()  # refused: another resume may take the folder
        p.error(str(error))
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with kill_stops_like_ctrl_c():
            run(config, overrides, out, directory=directory)
    except (ValueError, HydraException, OmegaConfBaseException) as error:
        print(f"recoworld robustness: {error}", file=sys.stderr)
        return 2
    return 0


def run(config: RobustnessConfig, overrides: Sequence[str], out: Path, console=None,
        directory: StudyDirectory | None = None) -> dict:
    """Build the lineup in the configured world, run the study with a progress bar, keeping
    each world's scores in the study folder (:mod:`~recoworld.apps.robustness.studydir`):
    a new one at ``out``, or ``directory``, a stopped study to resume, whose finished worlds
    are not run again; then write the report there. Returns the study's result. The report
    holds nothing that differs between two runs of one study; the wall time of its attempts
    is ``status.json``'s ``seconds``."""
    from rich.progress import Progress

    from recoworld.apps.robustness import report
    from recoworld.apps.robustness.lineup import Lineup
    from recoworld.apps.robustness.space import base_values
    from recoworld.apps.robustness.study import plan, run_study

    console = console or report.wide_console()
    begun = False
    try:
        lineup = Lineup(config, overrides)
        worlds = plan(config, config.check())
        if directory is None:
            directory = StudyDirectory.create(out, settings_of(config, overrides), lineup.identity(), len(worlds))
            finished = {}
        else:
            finished = directory.begin(lineup.identity(), worlds, lineup.default_identity)
        begun = True
        rollouts = [len(w.seeds) * len(config.agents) for w in worlds]
        with directory.recording():  # the folder stays locked (until ``finally``) after the ending is recorded
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task(f"{len(worlds)} worlds", total=sum(rollouts),
                                    completed=sum(rollouts[i] for i in finished))
                lineup.on_rollout = lambda: bar.advance(task)
                result = run_study(config, lineup, base_values(lineup.base, list(config.ranges)),
                                   record=directory.record, finished=finished)
            result["world"] = {"catalog": lineup.catalog.name, "n_items": lineup.catalog.n_items,
                               "simulator": lineup.cfg.simulator.get("_target_"), "overrides": list(overrides)}
            report.write(directory.path, result, console)
            directory.complete()
    except KeyboardInterrupt:
        print(f"recoworld robustness: {_stopped_note(out, directory, begun)}", file=sys.stderr)
        raise
    finally:
        if directory is not None:
            directory.release()  # also when the study was refused before it began
    return result


def _stopped_note(out: Path, directory: StudyDirectory | None, begun: bool) -> str:
    """What a stop kept, and how to go on."""
    if directory is None:
        return f"stopped before the first world; nothing was written ({out} is as it was): run the study again"
    resume = f"continue it with recoworld robustness --resume {directory.path}"
    if not begun:
        return f"stopped before any world ran; the study in {directory.path} is as it was: {resume}"
    return f"stopped with {directory.progress}, kept in {directory.path}: {resume}"


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; give integers separated by commas, e.g. 0,1,2") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


if __name__ == "__main__":
    sys.exit(main())
