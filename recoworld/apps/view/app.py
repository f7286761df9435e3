"""The ``recoworld view`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

#: The page's file name inside the run directory.
PAGE_NAME = "sessions.html"
#: Pages larger than this (MB) take a browser long to open: the command says how to shrink them.
LARGE_PAGE_MB = 100


def view_run(run_dir: str | Path, out: str | Path | None = None, *, max_users: int | None = 50,
             segment: str | None = None) -> Path:
    """Write the session viewer's page of the run in ``run_dir`` and return its path.

    Args:
        run_dir: a ``recoworld run`` directory (its log is read with
            :func:`recoworld.apps.run.run_log.read_run_log`, its catalog rebuilt from
            the config it ran, :func:`~recoworld.apps.view.data.run_config`).
        out: where to write the page (default: ``RUN_DIR/sessions.html``), a file ending in
            ``.html``; an existing file is replaced only if it is a page of the viewer.
        max_users: show the first ``max_users`` user slots of each agent and seed
            (``None``: all of them; a page of a large run grows with every slot).
        segment: show the users of this one of the run's ``experiment.segments``.

    Raises:
        FileNotFoundError, ValueError: ``run_dir`` is not a run with a log to show, or
            ``out`` is refused; the message names the value and the fix. Nothing is written.
    """
    from recoworld.apps.run.run_log import run_status

    run_dir = Path(run_dir)
    return _write_view(run_dir, run_status(run_dir), out, max_users=max_users, segment=segment)


def _write_view(run_dir: Path, status: dict | None, out: str | Path | None, *, max_users: int | None,
                segment: str | None) -> Path:
    """:func:`view_run` of the run whose ``status.json`` the caller read as ``status``."""
    from recoworld.apps.run.run_log import read_run_log_at
    from recoworld.apps.view.data import run_catalog, viewer_payload
    from recoworld.apps.view.page import render_page, write_page

    catalog = run_catalog(run_dir)  # first: a folder that is not a run is named as such
    out = page_path(run_dir, out)  # before the log is read: a refusal costs nothing
    run = read_run_log_at(run_dir, status, segment)
    title = f"RecoWorld run {run_dir.resolve().name}" + ("" if segment is None else f", segment {segment}")
    payload = viewer_payload(run.log, catalog, title=title, max_users=max_users, note=run.note)
    return write_page(render_page(payload), out)


def page_path(run_dir: Path, out: str | Path | None) -> Path:
    """Where the page goes (``out``, or the run directory's :data:`PAGE_NAME`); a
    ``ValueError`` names what is wrong with a folder, a name not ending in ``.html``, a file
    that is not an earlier page of the viewer (it would be lost), or a parent that is a file."""
    from recoworld.apps.view.page import is_viewer_page

    path = run_dir / PAGE_NAME if out is None else Path(out)
    flag = f"the page's path {path}" if out is None else f"--out {path}"
    if path.is_dir():
        raise ValueError(f"{flag} is a folder: give the page's file, e.g. --out {path / PAGE_NAME}")
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{flag}: give a file name ending in .html, e.g. --out {path.with_suffix('.html')} "
                         "(browsers open the page by its extension)")
    if path.exists() and not is_viewer_page(path):
        raise ValueError(f"{flag} exists and is not a page of recoworld view, so it is left as it is: give another "
                         "--out, or move the file away first")
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise ValueError(f"{flag}: {parent} is a file, not a folder")
    return path


def _as_it_was(run_dir: Path, out: str | None) -> str:
    """What a view stopped before its page was written left at the page's path."""
    page = run_dir / PAGE_NAME if out is None else Path(out)
    return f"{page} is as it was" if page.exists() else f"nothing was written to {page}"


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
    parser.add_argument("--out", help=f"where to write the page, a .html file (default: RUN_DIR/{PAGE_NAME}); an "
                        "existing file is replaced only if it is a page of recoworld view")
    parser.add_argument("--users", type=_users, default=50, metavar="N|all",
                        help="show the first N user slots of each agent and seed (default: 50)")
    parser.add_argument("--segment", metavar="NAME", help="show the users of this one of the run's "
                        "experiment.segments (default: the run's whole population)")
    args = parser.parse_args(argv)
    from recoworld.apps.run.run_log import run_note, run_segments, run_status

    run_dir = Path(args.run_dir)
    try:
        status = run_status(run_dir)  # once: the warning and the page describe the same state
        # First, as a long read should not hide it (a run without a complete rollout is refused).
        if status and status["parts"]["complete"] and (note := run_note(run_dir, status)):
            print(f"recoworld view: warning: {note}", file=sys.stderr)
        path = _write_view(run_dir, status, args.out, max_users=args.users, segment=args.segment)
    except KeyboardInterrupt:
        # write_page renames the whole page into place last, and deletes its temporary when stopped.
        print(f"recoworld view: stopped before the page was written; {_as_it_was(run_dir, args.out)}", file=sys.stderr)
        raise
    except (FileNotFoundError, ValueError) as error:
        print(f"recoworld view: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a folder that cannot be written, a full disk
        print(f"recoworld view: could not write the page: {error}", file=sys.stderr)
        return 1
    size = path.stat().st_size / 1e6
    print(f"session viewer: {path} ({size:.1f} MB)")
    if size > LARGE_PAGE_MB:
        users = "all" if args.users is None else args.users
        print(f"recoworld view: the page is large ({size:.0f} MB) and a browser may take long to open it; show "
              f"fewer user slots than --users {users}", file=sys.stderr)
    if args.segment is None and (segments := run_segments(run_dir, status)):
        print(f"the run's segments ({', '.join(segments)}) have users of their own: view them with --segment NAME")
    return 0
