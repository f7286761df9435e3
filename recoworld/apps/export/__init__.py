"""``recoworld export FORMAT RUN_DIR``: a run's episode log in another tool's format.

``minari``: a Minari dataset for offline RL (:mod:`.minari_dataset`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: format -> module whose ``main(argv)`` writes it.
FORMATS = {"minari": "recoworld.apps.export.minari_dataset"}


def main(argv: Sequence[str]) -> int:
    from importlib import import_module

    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: recoworld export minari RUN_DIR [--dataset-id ID] [--agent NAME] [--history H] "
              "[--segment NAME]\n\n"
              "formats: minari (an offline-RL dataset that minari.load_dataset reads)")
        return 0 if argv else 2
    if argv[0] not in FORMATS:
        print(f"recoworld export: unknown format {argv[0]!r}; choose one of: {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    return import_module(FORMATS[argv[0]]).main(argv[1:])
