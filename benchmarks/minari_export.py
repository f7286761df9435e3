"""Time of ``recoworld export minari`` on a large run, against an earlier release's export.

Makes a run of many short user episodes (``world=synthetic``, agents ``random`` and
``most_popular``, one seed; the defaults give about 23,000 episodes and 100,000 steps),
or takes ``--run-dir``, then exports it with this checkout's exporter and with the exporter
of git revision ``--baseline`` (its ``recoworld/apps/export/minari_dataset.py``, run in this
process on this checkout's log reader), back to back in one process, and prints both times
and their ratio. Both datasets are then read back and compared episode by episode
(observations, actions, rewards, terminations, truncations, seeds): the figures count only
if they hold the same episodes. (This checkout's dataset also carries the users' words in
``infos``, which earlier releases did not export.)

Usage::

    python benchmarks/minari_export.py --baseline e4daf54           # the export before batching
    python benchmarks/minari_export.py --run-dir outputs/big --baseline e4daf54 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _revisions import module_at  # benchmarks/, the script's folder

EXPORTER = "recoworld/apps/export/minari_dataset.py"


def make_run(out: Path, users: int, steps: int, max_steps: int) -> Path:
    from recoworld.apps.run.app import main as run_app

    run_app(["world=synthetic", f"env.num_envs={users}", f"experiment.steps={steps}", f"env.max_steps={max_steps}",
             "experiment.progress=false", "experiment.plots=false", "experiment.seeds=[0]",
             "experiment.agents=[random,most_popular]", f"hydra.run.dir={out}"])
    return out


def timed_export(export, run_dir: Path, dataset_id: str):
    start = time.perf_counter()
    dataset = export(run_dir, dataset_id)
    return time.perf_counter() - start, dataset


def same_episodes(a, b) -> bool:
    seeds = [[m["seed"] for m in d.storage.get_episode_metadata(range(d.total_episodes))] for d in (a, b)]
    if a.total_episodes != b.total_episodes or a.total_steps != b.total_steps or seeds[0] != seeds[1]:
        return False
    for x, y in zip(a.iterate_episodes(), b.iterate_episodes()):
        if not all(np.array_equal(x.observations[k], y.observations[k]) for k in x.observations):
            return False
        if not all(np.array_equal(getattr(x, f), getattr(y, f))
                   for f in ("actions", "rewards", "terminations", "truncations")):
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, help="a run to export (default: make one of --users x --steps)")
    parser.add_argument("--users", type=int, default=1170)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=5, help="env.max_steps: the length of an episode")
    parser.add_argument("--baseline", metavar="REV", required=True, help="git revision whose exporter to compare")
    parser.add_argument("--repeats", type=int, default=1, help="exports of each, alternating")
    args = parser.parse_args(argv)

    import minari  # noqa: F401  (imported before the timings, as both exporters import it)

    with tempfile.TemporaryDirectory(prefix="minari-export-bench-") as work:  # its datasets go with it
        os.environ["MINARI_DATASETS_PATH"] = str(Path(work) / "datasets")
        run_dir = args.run_dir or make_run(Path(work) / "run", args.users, args.steps, args.max_steps)
        compare(run_dir, args.baseline, args.repeats)


def compare(run_dir: Path, revision: str, repeats: int) -> None:
    """Export ``run_dir`` with both exporters, alternating, and print the times and their ratio."""
    from recoworld.apps.export import minari_dataset

    exporters = {f"baseline {revision}": module_at(revision, EXPORTER).export_minari,
                 "this checkout": minari_dataset.export_minari}
    times: dict[str, list[float]] = {name: [] for name in exporters}
    datasets = {}
    for repeat in range(repeats):
        for number, (name, export) in enumerate(exporters.items()):
            seconds, datasets[name] = timed_export(export, run_dir, f"bench/export{number}-v{repeat}")
            times[name].append(seconds)
            print(f"{name}: {seconds:.1f} s", flush=True)
    baseline, current = (min(t) for t in times.values())
    episodes = datasets["this checkout"]
    print(f"{episodes.total_episodes} episodes, {episodes.total_steps} steps ({run_dir})")
    print(f"best of {repeats}: baseline {baseline:.1f} s, this checkout {current:.1f} s, "
          f"{baseline / current:.1f}x faster")
    if not same_episodes(*datasets.values()):
        sys.exit("the two datasets hold different episodes: the timings do not compare")
    print("the two datasets hold the same episodes")

if __name__ == "__main__":
    main()
