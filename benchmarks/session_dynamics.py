"""Session dynamics of the calibrated MovieLens users against held-out users (issue 17 point 2).

Fits the world (or reads ``--world``), fits its session dynamics again without half of
the users, simulates the other half over their real observation windows and prints the
table of ``recoworld fidelity``'s session section: session length (p50, p80, p95), gaps,
the next gap against the last session's length and mean rating, and genre repetition,
each simulated against held-out with its distance (KS and 1-Wasserstein, 95% bootstrap
interval over users) beside the noise between two random halves of the held-out users
(:mod:`recoworld.apps.fidelity.sessions`).

Usage::

    python benchmarks/session_dynamics.py                    # fits a world first (about a minute)
    python benchmarks/session_dynamics.py --world /tmp/world --draws 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=None, help="a calibrated world (default: fit one)")
    parser.add_argument("--draws", type=int, default=200, help="bootstrap draws and random halvings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the section as JSON here")
    args = parser.parse_args()

    from recoworld.simulators.calibrated import CalibratedWorld

    from recoworld.apps.calibrate.fit import calibrate, summary
    from recoworld.apps.fidelity.evaluation import source_data
    from recoworld.apps.fidelity.page import sessions_section
    from recoworld.apps.fidelity.sessions import session_dynamics, targets

    with tempfile.TemporaryDirectory() as tmp:
        if args.world is None:
            start = time.perf_counter()
            world = calibrate(path=Path(tmp) / "world", progress=False)
            print(f"calibration: {time.perf_counter() - start:.1f}s")
        else:
            world = CalibratedWorld.load(args.world)
        print(summary(world))
        start = time.perf_counter()
        section = session_dynamics(world, source_data(world), seed=args.seed, draws=args.draws)
        print(f"session dynamics: {time.perf_counter() - start:.1f}s\n")
        print("\n".join(sessions_section(section, targets(section))))
        if args.json is not None:
            args.json.write_text(json.dumps(section, indent=1))


if __name__ == "__main__":
    main()
