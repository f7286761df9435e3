"""The counter of attempts at the parts of a Ray run, in a module of its own.

Each task of :func:`~recoworld.apps.run.executor.ray_parts` asks this actor for its attempt
number before its rollout starts. A Ray worker imports the module of the class it runs, so
this one imports nothing of its own: the actor is up as soon as its worker starts, instead of
holding every task back while that worker imports torch and Hydra (seconds per run, when the
class lived in :mod:`~recoworld.apps.run.executor`).
"""


class RolloutAttempts:
    """A Ray actor that counts the attempts at each part (by its file): a task cannot tell
    by itself that it runs again after its worker died."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def begin(self, part_file: str) -> int:
        """One more attempt at the part: its number (1 for the first)."""
        self.counts[part_file] = self.counts.get(part_file, 0) + 1
        return self.counts[part_file]

    def count(self, part_file: str) -> int:
        return self.counts.get(part_file, 0)
