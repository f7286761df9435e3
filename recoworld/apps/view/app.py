"""The ``recoworld view`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

#: The page's file name inside the run directory.
PAGE_NAME = "sessions.html"


def view_run(run_dir: str | Path, out: str | Path | None = None, *, max_users: int | None = 50) -> Path:
    """Write the session viewer's page of the run in ``run_dir`` and return its path.

    Args:
        run_dir: a ``recoworld run`` directory (its log is read with
            :func:`recoworld.logs.read_log`, its catalog rebuilt from ``.hydra/config.yaml``).
        out: where to write the page (default: ``RUN_DIR/sessions.html``).
        max_users: show the first ``max_users`` user slots of each agent and seed
            (``None``: all of them; a page of a large run grows with every slot).
    """
    from recoworld.apps.view.data import run_catalog, viewer_payload
    from recoworld.apps.view.page import render_page, write_page
    from recoworld.logs import read_log

    run_dir = Path(run_dir)
    catalog = run_catalog(run_dir)  # first: a folder that is not a run is named as such
    payload = viewer_payload(read_log(run_dir), catalog, title=f"RecoWorld run {run_dir.resolve().name}",
                             max_users=max_users)
    return write_page(render_page(payload), run_dir / PAGE_NAME if out is None else out)


def _users(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of user slots >= 1, or 'all'")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recoworld view", description="Write a self-contained HTML page to follow a run's users "
        "session by session (open it in any browser; it loads nothing from the network).")
    parser.add_argument("run_dir", help="directory of a `recoworld run`")
    parser.add_argument("--out", help=f"where to write the page (default: RUN_DIR/{PAGE_NAME})")
    parser.add_argument("--users", type=_users, default=50, metavar="N|all",
                        help="show the first N user slots of each agent and seed (default: 50)")
    args = parser.parse_args(argv)
    try:
        path = view_run(args.run_dir, args.out, max_users=args.users)
    except (FileNotFoundError, ValueError) as error:
        print(f"recoworld view: {error}", file=sys.stderr)
        return 2
    from recoworld.apps.run.rundir import unfinished_note

    if note := unfinished_note(args.run_dir):
        print(f"recoworld view: warning: {note}", file=sys.stderr)
    print(f"session viewer: {path}")
    return 0
