"""The viewer's page: one self-contained HTML file, written atomically.

The page is :file:`viewer.html` (its CSS and JavaScript inline, charts drawn as inline
SVG) with the run's data embedded as JSON. It loads nothing: no server, no CDN, and a
Content-Security-Policy that forbids any request. Item titles, instructions and any other
text are data: the JSON is escaped so that no ``</script>`` or ``<!--`` inside a title ends
the script element, and the page's script puts every value on screen through
``textContent``, never as markup.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from recoworld.logs import replacing

#: The placeholder of viewer.html that the JSON payload replaces.
PAYLOAD_MARK = "__PAYLOAD__"
#: What every page of the viewer (of this release and earlier ones) holds in its first lines:
#: a file without it is not a page that ``recoworld view`` may replace.
PAGE_TITLE = "<title>RecoWorld sessions</title>"
#: Characters that could end or open markup inside a <script> element, and their JSON escapes.
_SCRIPT_SAFE = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def render_page(payload: dict[str, Any]) -> str:
    """The HTML page showing ``payload`` (see :func:`recoworld.apps.view.data.viewer_payload`)."""
    template = files("recoworld.apps.view").joinpath("viewer.html").read_text(encoding="utf-8")
    # A payload is a tree of plain values (see viewer_payload): no cycle to look for among
    # its millions of lists.
    data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False)
    # One str.replace per character, not str.translate: translate looks up every character
    # of the page in its table (seconds for a page of tens of MB), replace scans in C. No
    # escape holds a character that another replaces, so the order does not matter.
    for character, escape in _SCRIPT_SAFE:
        data = data.replace(character, escape)
    return template.replace(PAYLOAD_MARK, data, 1)


def is_viewer_page(path: str | Path) -> bool:
    """Whether the file at ``path`` is a page that ``recoworld view`` wrote."""
    with open(path, "rb") as file:
        return PAGE_TITLE.encode() in file.read(4096)


def write_page(html: str, path: str | Path) -> Path:
    """Write ``html`` to ``path`` through a temporary file beside it and a rename, so that
    ``path`` holds the previous page or the new one, never half of one. The temporaries of
    ``path`` that writers killed outright left are deleted first (:func:`remove_dead_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    with replacing(path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    return path


def remove_dead_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries of the page ``path`` that views killed outright (SIGKILL, a lost
    machine) left beside it, and return them. One is deleted only once the process named in
    it (:func:`recoworld.logs.temporary_path`) has ended on this machine: a view of the same
    page may be writing it now."""
    from recoworld.logs import TEMPORARY_SUFFIX, left_by_ended_writers

    name = re.compile(rf"\.{re.escape(path.name)}\.(?P<pid>\d+){re.escape(TEMPORARY_SUFFIX)}")
    removed = [left for left in left_by_ended_writers(path.parent, name) if left.is_file()]
    for left in removed:
        left.unlink(missing_ok=True)
    return removed
