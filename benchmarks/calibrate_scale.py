"""``recoworld calibrate --data`` on a large log, stage by stage, against an earlier commit.

It writes a random log of ``--users`` x ``--items`` with a low-rank taste (30 to 60
interactions per user, in sessions of a few minutes, days apart) as Parquet in a temporary
folder, fits it with ``recoworld calibrate --data LOG --out DIR`` of this checkout and,
with ``--baseline REV``, of git revision ``REV`` first (its whole tree from ``git archive``,
``simulators/``, ``agents/``, ``envs/`` and ``conf/`` included: :func:`baseline_tree`; run the
same way in a subprocess of its own), and prints the seconds of each stage (the
artifact's ``meta["timings_s"]``) side by side, then how far the two worlds are apart: the
validation AUC, Platt's scale and shift, and the largest differences of the fitted interest
and features (up to the sign of each column) and of the users' popularity bias. ``--movielens`` fits
MovieLens-100K instead; ``--profile N`` prints the ``N`` functions of most time of this
checkout's run (cProfile).

Usage::

    python benchmarks/calibrate_scale.py --baseline 3971242                 # 4,000 x 4,000
    python benchmarks/calibrate_scale.py --movielens --baseline 3971242
    python benchmarks/calibrate_scale.py --users 1000 --items 1200 --profile 20
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import torch


ROOT = Path(__file__).resolve().parents[1]


def write_log(path: Path, n_users: int, n_items: int, seed: int = 0, dim: int = 8) -> None:
    """A log of ``n_users`` users, each choosing 30 to 60 of ``n_items`` items by a logit of
    rank ``dim`` plus popularity (Gumbel top-k), in sessions of 3 to 11 choices 90 s apart,
    sessions exponentially distributed days apart, rated by the same logit plus noise."""
    gen = np.random.default_rng(seed)
    logits = 0.8 * gen.normal(size=(n_users, dim)) @ gen.normal(size=(n_items, dim)).T + gen.normal(size=n_items)
    rows = []
    for user in range(n_users):
        k = gen.integers(30, 61)
        items = np.argsort(-(logits[user] + gen.gumbel(size=n_items)))[:k]
        gen.shuffle(items)
        session = np.arange(k) // gen.integers(3, 12)
        gaps = np.concatenate([[0.0], gen.exponential(5.0, session.max())]) * 86_400
        times = 880_000_000 + gen.integers(0, 30 * 86_400) + np.cumsum(gaps)[session] + 90 * np.arange(k)
        stars = np.clip(np.round(3 + 0.3 * logits[user, items] + gen.normal(size=k)), 1, 5).astype(np.int64)
        rows.append(pd.DataFrame({"user": user, "item": items, "timestamp": times.astype(np.int64), "rating": stars}))
    pd.concat(rows, ignore_index=True).to_parquet(path, index=False)


def calibrate(tree: Path, data: Path | None, out: Path, profile: Path | None) -> dict:
    """Run ``recoworld calibrate`` of the source ``tree`` in a subprocess; its stage timings."""
    command = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else []) + \
        ["-m", "recoworld.apps.cli", "calibrate", "--out", str(out), "--force", "--quiet"] + \
        (["--data", str(data)] if data else [])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "world.json").read_text())["meta"]["timings_s"]


def baseline_tree(revision: str, folder: Path) -> Path:
    """The source tree of git ``revision`` extracted under ``folder``, laid out as installed.

    ``recoworld.simulators``, ``.agents``, ``.envs`` and ``.conf`` live in top-level folders
    that ``pyproject.toml`` maps into the package (``[tool.setuptools.package-dir]``). With
    the tree only on ``PYTHONPATH``, Python would find them through this checkout's editable
    install instead, and the baseline would run this checkout's simulators with its own
    calibration (and write this checkout's artifact version). So each mapped folder of
    ``revision`` is moved to where its package name puts it, under the tree's ``recoworld``.
    """
    archive = folder / "baseline.tar"
    with open(archive, "wb") as file:
        subprocess.run(["git", "archive", "--format=tar", revision], cwd=ROOT, check=True, stdout=file)
    tree = folder / "baseline"
    tree.mkdir()
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(tree)], check=True)
    package_dirs = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"].get("package-dir", {})
    for package, source in package_dirs.items():
        target = tree.joinpath(*package.split("."))
        if target != tree / source:
            (tree / source).rename(target)
    return tree


def world_files(folder: Path) -> tuple[dict, dict]:
    """The ``meta["choice"]`` and the tensors of the world saved at ``folder``, read from its
    files as they are: the baseline's world may be of another artifact version, which
    :meth:`~recoworld.simulators.calibrated.CalibratedWorld.load` refuses."""
    choice = json.loads((folder / "world.json").read_text())["meta"]["choice"]
    return choice, torch.load(folder / "tensors.pt", weights_only=True)


def differences(before: Path, after: Path) -> None:
    """How far the world at ``after`` is from the one at ``before``."""
    (old_choice, old), (new_choice, new) = world_files(before), world_files(after)
    print(f"validation AUC: {old_choice['validation_auc']:.10f} -> {new_choice['validation_auc']:.10f}")
    for key in ("platt_scale", "platt_shift"):
        if key in old_choice and key in new_choice:
            print(f"{key}: {old_choice[key]!r} -> {new_choice[key]!r}")
    for name in ("interest", "features"):
        x, y = old[name], new[name]
        sign = torch.sign((x * y).sum(0))
        sign[sign == 0] = 1.0
        gap = (x * sign - y).abs()
        # The last two columns complete each vector to unit length (unit_space): sqrt(1 - |v|^2)
        # of the longest vectors magnifies a rounding of |v| near 1.
        print(f"{name}: identical {torch.equal(x, y)}, max |difference| up to column sign {float(gap.max()):.2g} "
              f"({float(gap[:, :-2].max()):.2g} without the two completing columns)")
    bias = float((old["users.popularity_bias"] - new["users.popularity_bias"]).abs().max())
    print(f"popularity bias: max |difference| {bias:.2g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--movielens", action="store_true", help="fit MovieLens-100K instead of a random log")
    parser.add_argument("--baseline", metavar="REV", help="git revision to time first and compare against")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N functions of most internal time of this checkout's run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = None
        if not args.movielens:
            data = folder / "log.parquet"
            write_log(data, args.users, args.items)
            print(f"log: {args.users} users x {args.items} items, {len(pd.read_parquet(data)):,} interactions")
        runs = {}
        if args.baseline:
            runs[f"baseline {args.baseline}"] = (baseline_tree(args.baseline, folder), folder / "before")
        runs["this checkout"] = (ROOT, folder / "after")
        profile = folder / "profile" if args.profile else None
        timings = {name: calibrate(tree, data, out, profile if name == "this checkout" else None)
                   for name, (tree, out) in runs.items()}
        print(f"{'stage (seconds)':<48}" + "".join(f"{name:>22}" for name in timings))
        for stage in next(iter(timings.values())):
            print(f"{stage:<48}" + "".join(f"{t.get(stage, float('nan')):>22.1f}" for t in timings.values()))
        if args.baseline:
            differences(folder / "before", folder / "after")
        if profile:
            pstats.Stats(str(profile)).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
