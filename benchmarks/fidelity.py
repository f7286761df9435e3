"""Calibration time, cached-load time and the fidelity report of the calibrated MovieLens user.

Fits the world from scratch into a temporary folder (what the first
``load_calibrated_world()`` does), loads it back (what every later call does), and writes
the fidelity report (``recoworld fidelity``) of that world. Prints the timings and the
headline numbers.

Usage::

    python benchmarks/fidelity.py                      # report in ./fidelity-report
    python benchmarks/fidelity.py --out DIR --social   # with the social-influence section
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("fidelity-report"))
    parser.add_argument("--social", action="store_true")
    args = parser.parse_args()

    from recoworld.apps.fidelity import report as fidelity
    from recoworld.apps.calibrate.fit import calibrate
    from recoworld.data.movielens import load_movielens_100k
    from recoworld.simulators.calibrated import load_calibrated_world

    load_movielens_100k()  # fetched and read once, so that the timing below is the fit's
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "world"
        start = time.perf_counter()
        calibrate(path=path, progress=True)
        fitted = time.perf_counter() - start
        start = time.perf_counter()
        load_calibrated_world(path)
        loaded = time.perf_counter() - start
        print(f"calibration: {fitted:.1f}s; cached load: {loaded * 1000:.0f} ms")
        fidelity.main(["--world", str(path), "--out", str(args.out), *(["--social"] if args.social else [])])


if __name__ == "__main__":
    main()
