"""``recoworld view RUN_DIR``: one self-contained HTML page to follow a run's simulated users.

Pick an agent, a seed and a user (a user slot's episode), and step through the user's
sessions: the slate with titles and genres, clicks, watch time, likes and ratings, the
satisfaction (mindset) and compliance curves, the instructions voiced, the session ends
and the return gaps. :mod:`recoworld.apps.run.run_log` reads a run's log (the rollouts
complete, checked on disk, and what to say of a run that did not complete; ``recoworld
export`` reads runs through it too), :mod:`.data` turns it into the page's data,
:mod:`.page` writes the page, :mod:`.app` is the command.
"""

from recoworld.apps.view.app import view_run

__all__ = ["view_run"]
