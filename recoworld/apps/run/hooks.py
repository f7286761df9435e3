"""What a run's parts do besides logging episodes: TensorBoard scalars and training curves.

With ``experiment.tensorboard=true``, every part of ``recoworld run`` (one agent, one seed)
writes TensorBoard event files under the run directory::

    <run_dir>/tensorboard/agent=<agent>/seed=<seed>/     the rollout's scalars, per step
    <run_dir>/tensorboard/agent=<agent>/sb3/<ALGO>_seed<seed>_1/   SB3 agents' training curves

and, for each of ``experiment.segments``, the same under ``tensorboard/segment=<segment>/``.
A part that a resumed run redoes writes its curves again from their first step, in place of
those of the attempt that was cut short (an SB3 agent retrains from scratch, and repeats the
same curve: its seed decides it); the parts that were complete keep theirs. A resume with
``experiment.tensorboard=true`` of a run whose complete parts have no scalars (an earlier
attempt ran with it off) writes them from those parts' logs, the same values
(:func:`complete_parts_scalars`); their SB3 training curves, which no log holds, are named
in a warning. A resume with ``experiment.tensorboard=false`` still deletes the curves of the
parts it redoes: they were cut short, and would not match the log.

Whatever writes curves is built for the folder it writes in, laid out as the run directory:
:func:`part_hooks` gives a part's hooks for a folder, and :func:`with_training_logs` points
SB3 agents' ``tensorboard_log`` into one (a ``tensorboard_log`` of the user's own is left as
given). The local executor builds both for the run directory. With
``experiment.executor=ray`` the same files land in the same places, but no worker writes in
the run directory: a task builds both for its own part folder, and returns what they wrote
there; the driver deletes the curves of earlier attempts at the parts it runs
(:func:`clear_curves`) and writes each finished part's curves whole
(:mod:`recoworld.apps.run.executor`). A task that fails leaves none of its curves there (the
local executor's rollout leaves those it wrote before the error).

The rollout's scalars (tags ``<agent>/<name>``, x-axis the rollout step) are the step's
means over its real interactions (autoreset rows excluded):

- ``return``: cumulative reward per user slot since the rollout began;
- ``reward``: mean reward of the step's interactions;
- ``ctr``: clicks / items shown;
- ``return_rate``: share of the step's session ends after which the user returns (only at
  steps where some session ended);
- ``compliance``: mean compliance over interactions with an instruction in force (only at
  steps where some instruction was).

Read them with ``tensorboard --logdir <run_dir>/tensorboard``. The writer is
``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package
(``pip install 'recoworld[tensorboard]'``): without it, a run with the flag on is refused
before its run directory is touched, in a line that says so (:func:`check_tensorboard`,
called by :func:`~recoworld.apps.run.runner.run_experiment` with the run's other checks). A
file where a part's curves go (a file named ``tensorboard`` in the run directory) stops the
run before its first part, in the same line with either executor (:func:`check_curve_folders`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from recoworld.apps.run.checks import ExperimentConfigError
from recoworld.apps.run.rundir import Part
from recoworld.envs.rollout import Hook, RolloutResult, Step
from recoworld.logs import TEMPORARY_SUFFIX, list_column, read_log, replacing

log = logging.getLogger(__name__)

#: The class whose configs get a ``tensorboard_log`` (SB3's training curves).
SB3_AGENT = "recoworld.agents.sb3.SB3Agent"
TENSORBOARD_DIR = "tensorboard"
#: Where, in an agent's folder, :func:`with_training_logs` has SB3 write its training curves.
SB3_FOLDER = "sb3"
#: The start of the name of a TensorBoard event file (what ``tensorboard --logdir`` reads).
EVENT_FILES = "events.out.tfevents."
#: The columns of a step that its scalars are computed from (the feedback's, then its info's).
STEP_COLUMNS = ("reward", "clicked", "left_session", "returned", "instruction_in_force", "compliance")
NEEDS_TENSORBOARD = ("experiment.tensorboard=true needs the tensorboard package: pip install "
                     "'recoworld[tensorboard]' (or run with experiment.tensorboard=false)")


def part_hooks(cfg: DictConfig, folder: str | Path, part: Part) -> list[Hook]:
    """The rollout hooks of ``part`` that the experiment's settings ask for (besides the
    episode log and the progress bar), writing in ``folder`` (the run directory, or a Ray
    task's part folder laid out as it): a :class:`FreshTrainingCurves`, and with
    ``experiment.tensorboard`` a :class:`TensorBoardScalars`, without it a
    :class:`StaleScalars` (a resume with the flag off leaves no curve of an attempt cut short)."""
    training, rollout = _curve_folders(folder, part)
    scalars = TensorBoardScalars if cfg.experiment.get("tensorboard", False) else StaleScalars
    return [FreshTrainingCurves(training), scalars(rollout)]


def _curve_folders(folder: str | Path, part: Part) -> tuple[Path, Path]:
    """Where ``part``'s SB3 training curves and its rollout's scalars go in ``folder``."""
    agent_folder = Path(folder) / TENSORBOARD_DIR / _agent_folder(part.agent, part.segment)
    return agent_folder / SB3_FOLDER, agent_folder / f"seed={part.seed}"


def clear_curves(run_dir: str | Path, part: Part) -> None:
    """Delete the curves that earlier attempts at ``part`` left in ``run_dir``: what
    :class:`FreshTrainingCurves` and :class:`StaleScalars` delete when the part starts in this
    process, for a part whose rollout runs elsewhere (a Ray task), whatever
    ``experiment.tensorboard`` says."""
    training, rollout = _curve_folders(run_dir, part)
    _delete_training_runs(training, part.seed)
    _delete_events(rollout)


def complete_parts_scalars(cfg: DictConfig, lineup: dict[str, DictConfig], folder: Path, parts) -> None:
    """With ``experiment.tensorboard`` on, write the rollout scalars of each of ``parts``
    (complete parts, their logs in the run directory ``folder``) that has none: those an
    earlier attempt with the flag off finished, which a resume keeps. They are rebuilt from
    the part's log by :class:`TensorBoardScalars`, so they hold what the rollout would have
    written live. An SB3 agent's training curves are no part of the log: a complete part that
    has none is named in a warning."""
    if not cfg.experiment.get("tensorboard", False):
        return
    untrained = []
    for part in parts:
        training, rollout = _curve_folders(folder, part)
        if not any(rollout.glob(f"{EVENT_FILES}*")):
            _delete_events(rollout)  # the temporaries a killed driver left
            rollout.parent.mkdir(parents=True, exist_ok=True)
            # Written whole, then named: a stop leaves no curve that a later resume would take for complete.
            with replacing(rollout, folder=True) as temporary:
                TensorBoardScalars(temporary).from_log(read_log(folder / part.file), part.agent, int(cfg.env.num_envs))
        agent = lineup[part.agent]
        if (agent.get("_target_") == SB3_AGENT and agent.get("tensorboard_log") is None
                and not any(training.glob(f"*_seed{part.seed}_[0-9]*"))):
            untrained.append(str(Path(*Path(part.file).parts[1:]).with_suffix("")))
    if untrained:
        log.warning("no TensorBoard training curves for %s: an earlier attempt finished these rollouts with "
                    "experiment.tensorboard=false, and no log holds training; for their curves, rerun the command "
                    "into a new folder (another hydra.run.dir)", ", ".join(untrained))


def with_training_logs(cfg: DictConfig, lineup: dict[str, DictConfig], folder: str | Path,
                       segment: str | None = None) -> dict[str, DictConfig]:
    """``lineup`` with each SB3 agent's ``tensorboard_log`` pointing into ``folder`` (the run
    directory, or a Ray task's part folder laid out as it; into ``segment``'s folder for a
    part of one of ``experiment.segments``) when ``experiment.tensorboard`` is on (the lineup
    unchanged otherwise). An agent whose config gives its own ``tensorboard_log`` keeps it.
    Copies: the lineup the run directory saves and compares on resume stays as composed."""
    if not cfg.experiment.get("tensorboard", False):
        return lineup
    logged = {}
    for name, agent in lineup.items():
        if agent.get("_target_") == SB3_AGENT and agent.get("tensorboard_log") is None:
            agent = OmegaConf.create(OmegaConf.to_container(agent, resolve=True))
            with open_dict(agent):
                agent.tensorboard_log = str(Path(folder) / TENSORBOARD_DIR / _agent_folder(name, segment) / SB3_FOLDER)
        logged[name] = agent
    return logged


def _agent_folder(agent: str, segment: str | None) -> str:
    return f"agent={agent}" if segment is None else f"segment={segment}/agent={agent}"


def check_tensorboard(experiment) -> None:
    """Refuse ``experiment.tensorboard=true`` where the tensorboard package is missing.

    Raises:
        ExperimentConfigError: :data:`NEEDS_TENSORBOARD`, the fix (a missing extra is a
            mistake in the setup, told in a line, not a bug's traceback).
    """
    if experiment.get("tensorboard", False):
        _writer_class()


def _writer_class():
    """``torch.utils.tensorboard.SummaryWriter``; :class:`ExperimentConfigError` when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ExperimentConfigError(NEEDS_TENSORBOARD) from None
    return SummaryWriter


def summary_writer(folder: Path):
    """A ``SummaryWriter`` on ``folder`` (:func:`check_tensorboard` tells when there is none).

    Raises:
        ExperimentConfigError: a file stands where ``folder`` or one of its parents should be
            (:func:`check_curve_folders`' message), where the writer would raise a bare
            ``NotADirectoryError``.
    """
    writer = _writer_class()
    _refuse_file_in_the_way(folder)
    return writer(log_dir=str(folder))


def check_curve_folders(experiment, folder: str | Path, parts) -> None:
    """Refuse, with ``experiment.tensorboard`` on, before ``parts`` run, a file that stands
    where the folder of one's rollout scalars or of its SB3 training curves, or one of their
    parents, goes in ``folder`` (the run directory): a file named ``tensorboard`` there, say.
    Both executors call it before their first part, so that the run stops in the same line
    whichever runs it (the writer, or SB3 as it trains, would raise a bare
    ``NotADirectoryError`` in this process, and Ray's driver one as it puts a finished part's
    curves in place). The training folder is checked for every part, an SB3 agent or not.

    Raises:
        ExperimentConfigError: naming the folder, the file and the fix.
    """
    if experiment.get("tensorboard", False):
        for part in parts:
            training, rollout = _curve_folders(folder, part)
            for curves in (rollout, training):
                _refuse_file_in_the_way(curves)


def _refuse_file_in_the_way(folder: Path) -> None:
    """The one message of a file where ``folder``, which takes event files, or a parent goes."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ExperimentConfigError(f"experiment.tensorboard=true writes event files in {folder}, but {blocking} is a "
                                    f"file: move it away, then finish the run with experiment.resume=true (or run "
                                    "with experiment.tensorboard=false)")


class FreshTrainingCurves(Hook):
    """Before the agent is set up (an SB3 agent trains then, from its first step), removes the
    training curves of the rollout's seed (``<ALGO>_seed<seed>_<n>/``) that an attempt at the
    same part left in ``folder``, the one :func:`with_training_logs` gives: SB3 would write the
    new curve beside them as ``_2``. A ``tensorboard_log`` set in the agent's config is not
    touched."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_setup(self, env, agent, seed: int, label: str) -> None:
        _delete_training_runs(self.folder, seed)


class StaleScalars(Hook):
    """Before the rollout, deletes the event files that an attempt at the same part left in
    ``folder``: a part runs again from its first step when a resumed run redoes it, and the
    events of the attempt that was cut short would repeat its steps beside the new ones (or,
    with ``experiment.tensorboard`` now off, stand for a part whose log they do not match)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_start(self, env, agent, seed: int, label: str) -> None:
        _delete_events(self.folder)


def _delete_training_runs(folder: Path, seed: int) -> None:
    """SB3's training curves of ``seed`` in ``folder`` (``<ALGO>_seed<seed>_<n>/``)."""
    for stale in folder.glob(f"*_seed{seed}_[0-9]*"):
        shutil.rmtree(stale)


def _delete_events(folder: Path) -> None:
    """The event files in ``folder``, and the temporaries of those a Ray run's driver was
    writing when it was killed (hidden, but TensorBoard reads any file named ``*tfevents*``)."""
    for stale in [*folder.glob(f"{EVENT_FILES}*"), *folder.glob(f".{EVENT_FILES}*{TEMPORARY_SUFFIX}")]:
        stale.unlink()


class TensorBoardScalars(StaleScalars):
    """Writes a rollout's per-step scalars (see the module's docstring) to ``folder``, in place
    of those of an attempt at the same part (:class:`StaleScalars`)."""

    def __init__(self, folder: str | Path):
        super().__init__(folder)
        self.writer = None
        self.label = ""
        self.total = 0.0
        self.slots = 1

    def on_start(self, env, agent, seed: int, label: str) -> None:
        super().on_start(env, agent, seed, label)
        self._open(label, int(env.num_envs))

    def _open(self, label: str, slots: int) -> None:
        self.writer = summary_writer(self.folder)
        self.label, self.total, self.slots = label, 0.0, slots

    def on_step(self, step: Step) -> None:
        feedback, info = step.feedback, step.feedback.info
        valid = np.asarray(feedback.valid, dtype=bool)
        if valid.any():
            self._write(step.t, {"reward": feedback.reward, "clicked": feedback.clicked,
                                 **{name: info[name] for name in STEP_COLUMNS[2:]}}, valid)

    def _write(self, t: int, columns: dict, rows) -> None:
        """The scalars of rollout step ``t`` from its ``rows`` of ``columns`` (:data:`STEP_COLUMNS`):
        its real interactions, from the env's feedback live or from a part's log."""
        reward = np.asarray(columns["reward"], dtype=np.float64)[rows]
        self.total += float(reward.sum())
        scalars = {"return": self.total / self.slots, "reward": float(reward.mean()),
                   "ctr": float(np.asarray(columns["clicked"], dtype=np.float64)[rows].mean())}
        left = np.asarray(columns["left_session"], dtype=bool)[rows]
        if left.any():
            scalars["return_rate"] = float(np.asarray(columns["returned"], dtype=bool)[rows][left].mean())
        in_force = np.asarray(columns["instruction_in_force"], dtype=bool)[rows]
        if in_force.any():
            scalars["compliance"] = float(np.asarray(columns["compliance"], dtype=np.float64)[rows][in_force].mean())
        for name, value in scalars.items():
            self.writer.add_scalar(f"{self.label}/{name}", value, t)

    def from_log(self, frame, label: str, slots: int) -> None:
        """Write the scalars of a part's rollout from its log ``frame`` (a DataFrame of
        :func:`~recoworld.logs.read_log`: its rows are the real interactions, ``rollout_step``
        the step), the same as the rollout wrote live, and close the file."""
        self._open(label, slots)
        try:
            columns = {name: list_column(frame, name) if name == "clicked" else frame[name].to_numpy()
                       for name in STEP_COLUMNS}
            for t, rows in sorted(frame.groupby("rollout_step").indices.items()):
                self._write(int(t), columns, rows)
        finally:
            self.close()

    def on_end(self, result: RolloutResult) -> None:
        self.close()

    def close(self) -> None:
        """Flush the events written so far and close the file: after the last step, and
        also when the rollout raises (:func:`~recoworld.apps.run.executor.rollout_part`
        closes its hooks however it ends), where ``on_end`` never comes."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class TrainingProgress(Hook):
    """Shows an agent's training before its rollout (SB3 agents train in ``setup``) as a task
    of the run's rich progress display, advanced by the agent's ``training_progress``."""

    def __init__(self, progress, description: str):
        self.progress, self.description = progress, description

    def on_setup(self, env, agent, seed: int, label: str) -> None:
        if not hasattr(agent, "training_progress") or getattr(agent, "load_path", None) is not None:
            return
        task = self.progress.add_task(f"{self.description} training", total=int(agent.total_timesteps))
        agent.training_progress = lambda steps: self.progress.advance(task, steps)
