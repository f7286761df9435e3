"""``recoworld robustness``: the command line of the robustness study (``--help``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from recoworld.apps.robustness.space import DEFAULT_RANGES, SAMPLERS, SCALES, ParameterRange
from recoworld.apps.robustness.study import QUICK, REWARD_PER_STEP, RobustnessConfig
from recoworld.logs import check_new_folder

EPILOG = """\
The configured world is recoworld run's: Hydra overrides after the flags choose it, e.g.
  recoworld robustness --quick world=synthetic
  recoworld robustness world=movielens 'simulator.population={patience: low}'
  recoworld robustness --parameters leave_mindset,return_mindset --range return_mindset=1:12
  recoworld robustness --show-ranges > ranges.yaml; recoworld robustness --ranges ranges.yaml
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
                   help="worlds that run the configured world with other users, the noise floor (default: %(default)s)")
    p.add_argument("--show-ranges", action="store_true", help="print the ranges as YAML and exit")
    p.add_argument("--out", type=Path, help="new report folder (default: outputs/robustness/DATE/TIME)")
    return p


def config_from(args: argparse.Namespace) -> RobustnessConfig:
    """The study's config from the parsed flags (``ValueError`` names a bad one)."""
    ranges = dict(DEFAULT_RANGES) if args.ranges is None else read_ranges(args.ranges)
    for text in args.range:
        name, spec = parse_range(text)
        ranges[name] = spec
    if args.parameters is not None:
        unknown = [n for n in args.parameters if n not in ranges]
        if unknown:
            raise ValueError(f"--parameters names {unknown[0]!r}, which has no range; ranges: {', '.join(ranges)} "
                             f"(add one with --range {unknown[0]}=LOW:HIGH)")
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
    """Run the study and write the report; returns the exit status (2 for a bad setting)."""
    p = parser()
    args = p.parse_intermixed_args(argv)
    try:
        config = config_from(args)
        space = config.check()
        if args.show_ranges:
            print(OmegaConf.to_yaml(space.to_dict()), end="")
            return 0
        out = check_new_folder(args.out or Path("outputs/robustness") / time.strftime("%Y-%m-%d/%H-%M-%S"))
    except ValueError as error:
        p.error(str(error))
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        run(config, args.overrides, out)
    except (ValueError, HydraException, OmegaConfBaseException) as error:
        print(f"recoworld robustness: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # The report is written whole once every world has run: say that nothing was.
        print(f"recoworld robustness: stopped before the last world; no report was written ({out} is as it was), "
              "run the study again", file=sys.stderr)
        raise
    return 0


def run(config: RobustnessConfig, overrides: Sequence[str], out: Path, console=None) -> dict:
    """Build the lineup in the configured world, run the study with a progress bar, write
    the report into ``out``; returns the study's result (with its wall time in ``seconds``)."""
    from rich.progress import Progress

    from recoworld.apps.robustness import report
    from recoworld.apps.robustness.lineup import Lineup
    from recoworld.apps.robustness.space import base_values
    from recoworld.apps.robustness.study import plan, run_study

    console = console or report.wide_console()
    start = time.perf_counter()
    lineup = Lineup(config, overrides)
    worlds = plan(config, config.check())
    rollouts = sum(len(w.seeds) for w in worlds) * len(config.agents)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{len(worlds)} worlds", total=rollouts)
        lineup.on_rollout = lambda: bar.advance(task)
        result = run_study(config, lineup, base_values(lineup.base, list(config.ranges)))
    result["world"] = {"catalog": lineup.catalog.name, "n_items": lineup.catalog.n_items,
                       "simulator": lineup.cfg.simulator.get("_target_"), "overrides": list(overrides)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    report.write(out, result, console)
    return result


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; give integers separated by commas, e.g. 0,1,2") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


if __name__ == "__main__":
    sys.exit(main())
