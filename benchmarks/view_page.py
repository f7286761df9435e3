"""Time of ``recoworld view``'s page on a large run, against an earlier release's viewer.

Makes a run of many user episodes (``world=synthetic``, agent ``random``, three seeds; the
defaults give 64 user slots x 1,500 steps x 3 seeds, 264,781 steps in 23,400 user
episodes), or takes ``--run-dir``, reads its log and catalog once, then builds the page
(``viewer_payload`` and ``render_page``, every user slot) with this checkout's viewer and
with the viewer of git revision ``--baseline`` (its ``recoworld/apps/view/data.py`` and
``page.py``, run in this process on this checkout's log reader and page template), back
to back and alternating, and prints each time and their ratio. The figures count only if
both pages are the same, byte for byte: the script checks that, and fails otherwise.

Usage::

    python benchmarks/view_page.py --baseline 3971242                  # the page built value by value
    python benchmarks/view_page.py --run-dir outputs/big --baseline 3971242 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _revisions import module_at  # benchmarks/, the script's folder

VIEWER = ("recoworld/apps/view/data.py", "recoworld/apps/view/page.py")


def make_run(out: Path, users: int, steps: int) -> Path:
    from recoworld.apps.run.app import main as run_app

    run_app(["world=synthetic", f"env.num_envs={users}", f"experiment.steps={steps}", "experiment.progress=false",
             "experiment.plots=false", "experiment.seeds=[0,1,2]", "experiment.agents=[random]",
             f"hydra.run.dir={out}"])
    return out


def timed_page(data, page, log, catalog) -> tuple[float, str]:
    start = time.perf_counter()
    html = page.render_page(data.viewer_payload(log, catalog, title="view_page", max_users=None))
    return time.perf_counter() - start, html


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, help="a run to view (default: make one of --users x --steps)")
    parser.add_argument("--users", type=int, default=64, help="env.num_envs of the run made")
    parser.add_argument("--steps", type=int, default=1500, help="experiment.steps of the run made")
    parser.add_argument("--baseline", metavar="REV", required=True, help="git revision whose viewer to compare")
    parser.add_argument("--repeats", type=int, default=1, help="pages of each, alternating")
    args = parser.parse_args(argv)
    from recoworld.apps.run.run_log import read_run_log_at, run_status
    from recoworld.apps.view import data, page

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run_dir or make_run(Path(scratch) / "run", args.users, args.steps)
        log = read_run_log_at(run_dir, run_status(run_dir), None).log
        catalog = data.run_catalog(run_dir)
        baseline = tuple(module_at(args.baseline, path) for path in VIEWER)
        times: dict[str, list[float]] = {args.baseline: [], "this checkout": []}
        pages = {}
        for _ in range(args.repeats):
            for name, (viewer_data, viewer_page) in ((args.baseline, baseline), ("this checkout", (data, page))):
                seconds, pages[name] = timed_page(viewer_data, viewer_page, log, catalog)
                times[name].append(seconds)
        episodes = log.groupby(["agent", "seed", "user", "episode"]).ngroups
        print(f"run {run_dir}: {len(log):,} steps in {episodes:,} user episodes; page "
              f"{len(pages['this checkout'].encode()) / 1e6:.1f} MB")
        for name, seconds in times.items():
            print(f"  {name}: {', '.join(f'{s:.1f} s' for s in seconds)} (best {min(seconds):.1f} s)")
        print(f"  ratio (best against best): x{min(times[args.baseline]) / min(times['this checkout']):.1f}")
        if pages[args.baseline] != pages["this checkout"]:
            sys.exit("the two pages differ: the figures do not count")
        print("  the two pages are the same, byte for byte")


if __name__ == "__main__":
    main()
