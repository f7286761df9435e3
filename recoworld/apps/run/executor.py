"""Where the rollouts of ``recoworld run`` execute: in this process, or as Ray tasks.

``experiment.executor=local`` (the default) runs the parts of a run (:class:`Part`: an
agent over a seed, on the population or a segment) one after the other in this process.
``experiment.executor=ray`` makes each part a Ray task (one CPU each):

- Ray is started on this machine with all its cores (``ray.init(num_cpus=os.cpu_count())``,
  no dashboard, workers' output kept off the console), also where a cluster runs on this
  machine or ``RAY_ADDRESS`` names one, or joins the cluster at
  ``experiment.ray_address`` (e.g. ``ray://head:10001`` or ``auto``); a Ray already
  initialised in the process (a test, a notebook) is used as it is. Ray stays up until the
  process exits, so the segments of a run share it. Before the run directory is touched,
  :func:`check_executor` refuses a run whose Ray is not installed or fails to import (a
  dependency missing or of another version: the import's error is named), or whose address is not
  one Ray takes or has nothing answering at it (a TCP connection of at most
  :data:`CONNECT_TIMEOUT_S`: Ray itself would retry for minutes), ``auto`` included: it is
  the address Ray finds (``RAY_ADDRESS``, else the cluster running on this machine), and
  with none it is refused; an address that Ray then cannot join is refused when Ray
  starts. Each refusal is an
  :class:`~recoworld.apps.run.checks.ExperimentConfigError` naming the value and the fix.
- Each task builds its own simulator, env and agent from the run's resolved configs
  (plain mappings) and the catalog (sent once to Ray's object store), runs
  :func:`~recoworld.envs.rollout.rollout` with torch and the C kernels on one thread each
  (:func:`~recoworld.kernels.placement.one_cpu`), writes the part's files — its log and,
  with ``experiment.tensorboard=true``, its TensorBoard curves (rollout scalars, SB3
  training curves), whose hooks and ``tensorboard_log`` it builds for that folder
  (:mod:`recoworld.apps.run.hooks`) — to a folder local to the worker, laid out as the run
  directory (:func:`part_folder`: a killed worker's is deleted by the next task), and
  returns them (path and bytes) with the part's counters. Workers need
  RecoWorld installed and, for ``simulator=calibrated``, the artifact at the same path;
  they need no shared file system for the run directory, and write nothing in it (a
  ``tensorboard_log`` the user gives an SB3 agent is the user's: the worker writes there).
- The driver first deletes the curves that earlier attempts at the parts left in the run
  directory (:func:`~recoworld.apps.run.hooks.clear_curves`: a resumed run redoes those
  parts), then, as tasks finish and in whatever order they finish, writes each part's
  returned files where the local executor writes them (the log under ``episodes/``, the
  curves under ``tensorboard/``), each under a temporary name renamed when all are written,
  and records the part (:meth:`RunDirectory.record`); the progress bar advances by one
  rollout per task. A resumed run therefore works as with the local executor, and a task
  that fails leaves nothing of its part in the run directory.
- A task whose worker dies (a Ray system failure: the process crashed or was killed, ran
  out of memory, or its node was lost) runs again, up to ``experiment.ray_retries`` times
  (:data:`RAY_RETRIES` when the config has no such key); each such retry is logged with the
  part's agent and seed. A retried rollout starts afresh from its configs and seed, so it
  logs the rows the first attempt would have. A task that raises (an error of the rollout
  itself, which would only repeat) is not retried.
- A task that raises, or whose worker died on every attempt, is reported with its agent
  and seed (:class:`RolloutsFailed`, in the order of the run's parts; a dead worker with its
  number of attempts), after the other tasks have finished and been recorded (the traceback
  of each task that raised is logged as it fails, on the console and in the run's log file, as
  the local executor shows its own; one that an earlier task raised alike, the same error
  type from the same lines whatever its message, is not repeated: its message is logged in
  one line that points to it); the run ends ``failed`` and ``experiment.resume=true`` runs
  only the failed parts again. Where every
  failed task raised the same :class:`~recoworld.apps.run.checks.ExperimentConfigError` (a
  value the simulator, env or agent refuses: a mistake in the config, not in a rollout), that
  error ends the run instead, in the one line the local executor gives.
- ``kill`` (SIGTERM) stops a Ray run as it stops a local one: it ends ``interrupted`` and
  says how to resume (``ray.init`` sets a SIGTERM handler of its own, which would end the
  process at once: the one in force before it is put back), and a local Ray's processes
  stop with the process. A Ctrl-C while Ray starts stops the run once it has started (Ray
  stopped midway would leave its processes behind).

A rollout depends only on its configs and seed (counter-based randomness), so both
executors write the same rows and ``metrics.json`` (``seconds`` aside). LLM users'
budgets (``llm.max_cost_usd``...) count per task under Ray, not for the whole run.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from recoworld.apps.run.attempts import RolloutAttempts
from recoworld.apps.run.checks import ExperimentConfigError
from recoworld.apps.run.hooks import clear_curves, with_training_logs
from recoworld.apps.run.plugins import check_returned
from recoworld.apps.run.rundir import Part, RunDirectory, how_to_finish
from recoworld.envs.rollout import rollout
from recoworld.logs import EpisodeLog, left_by_ended_writers

#: Seconds :func:`check_executor` waits for a TCP connection to ``experiment.ray_address``.
CONNECT_TIMEOUT_S = 5.0
#: The start of the name of a Ray task's folder for its part's files (:func:`part_folder`).
PART_FOLDER = "recoworld-part-"
#: How many times a part whose Ray worker died runs again, unless ``experiment.ray_retries`` says.
RAY_RETRIES = 3
NEEDS_RAY = ("experiment.executor=ray needs Ray: pip install 'recoworld[ray]' (or run with "
             "experiment.executor=local)")
ADDRESS_FORMS = ("give auto (the cluster this node belongs to), HOST:6379 (the head's address, from a node of the "
                 "cluster) or ray://HOST:10001 (Ray Client, from outside it), or leave experiment.ray_address null "
                 "to start Ray on this machine")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartOutcome:
    """What the run directory records of a finished part."""

    rows: int
    seconds: float
    simulator: dict
    kernels: dict
    agent_stats: dict


class RolloutsFailed(RuntimeError):
    """One or more Ray tasks raised; the message names each one's agent, seed and error."""


def rollout_part(make_simulator: Callable, make_env: Callable, agent_cfg: Any, catalog, part: Part,
                 experiment, path: Path, hooks: Sequence = ()) -> PartOutcome:
    """One part: a fresh simulator, env and agent, a rollout logged to ``path``. However it
    ends, errors and Ctrl-C included, each of them is closed once, and so is each hook that
    has a ``close`` (a TensorBoard writer) and the agent if it has one (an LLM agent's
    client or embedded model). A simulator factory that returns no
    ``recoworld.simulators.UserSimulator``, or an agent factory that returns no
    ``recoworld.agents.Recommender``, is refused, naming it
    (:func:`~recoworld.apps.run.plugins.check_returned`)."""
    hooks = list(hooks)
    with closing(_simulator(make_simulator, catalog)) as simulator, \
            closing(built("env", make_env, simulator=simulator)) as env, EpisodeLog(path) as episode_log, \
            ExitStack() as closed:
        for hook in hooks:
            closed.enter_context(_closed(hook))
        agent = built(f"agent {part.agent}", instantiated, config=agent_cfg, _convert_="object")
        agent = closed.enter_context(_closed(_checked(agent, agent_cfg.get("_target_"), "agent")))
        result = rollout(
            env, agent, experiment.steps, part.seed,
            logger=episode_log, label=part.agent, log_candidates=experiment.log_candidates, hooks=hooks,
        )
        # Either may refuse the rollout: LLM users, or an LLM agent, that fell back too often.
        simulator.finish()
        agent.finish()
        usage, kernels = simulator.metrics(), dict(getattr(env.unwrapped, "kernels", {}))
        stats = agent.stats()
    return PartOutcome(result.interactions, result.seconds, usage, kernels, stats)


@contextmanager
def _closed(thing):
    """``thing``, whose ``close()`` (if it has one) is called once when the block ends. A
    close that fails after the block raised is logged, not raised: the block's error (the
    rollout's) is the one to see."""
    close = getattr(thing, "close", None)
    if not callable(close):
        yield thing
        return
    try:
        yield thing
    except BaseException:
        try:
            close()
        except Exception:
            log.exception("closing %s after the rollout failed also failed", type(thing).__name__)
        raise
    close()


def _simulator(make_simulator: Callable, catalog):
    """The part's simulator, ``make_simulator(catalog=catalog)``, checked to be one before the
    rollout calls its methods: a factory (a function as ``simulator._target_``) is known only
    by what it returns. What it returned instead is closed if it can be."""
    return _checked(built("simulator", make_simulator, catalog=catalog), make_simulator, "simulator")


def _checked(made, factory, group: str):
    """``made``, what ``factory`` built for ``group``, once :func:`check_returned` found it to be
    of its group's base; what is not is closed, if it can be, before the refusal is raised."""
    try:
        check_returned(made, factory, group)
    except ExperimentConfigError:
        with _closed(made):
            raise
    return made


def instantiated(config, **kwargs):
    """``instantiate(config, **kwargs)``: the object of ``config`` (the world, an agent); a
    value its class refuses raises that ``ValueError`` itself, not Hydra's multi-line wrapper
    of it, so that :func:`built` reports it in one line."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(config, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, ValueError):
            raise err.__cause__ from None
        raise


def built(group: str, make: Callable, **kwargs):
    """``make(**kwargs)``: the run's ``group`` (``world``, ``simulator``, ``env``, ``agent NAME``) built
    from its config. A value its class refuses (its checks raise ``ValueError`` naming the
    value and the fix) is a mistake in the config, not a bug: it ends the run as one, in a
    line naming the group (:class:`~recoworld.apps.run.checks.ExperimentConfigError`), not in
    a traceback."""
    try:
        return make(**kwargs)
    except ValueError as err:
        raise ExperimentConfigError(f"building the {group}: {err}") from err


def ray_parts(cfg: DictConfig, lineup: dict[str, DictConfig], parts: Sequence[Part], catalog,
              directory: RunDirectory, hooks: Callable[[Path, Part], list], on_done: Callable[[Part], None],
              retries: int | None = None) -> None:
    """Run ``parts`` as Ray tasks and record each in ``directory`` as it finishes
    (``on_done`` is called after each record, e.g. to advance a progress bar).

    ``hooks(folder, part)`` gives a part's extra rollout hooks, writing in ``folder``, laid out
    as ``directory`` (e.g. ``functools.partial(part_hooks, cfg)``,
    :func:`~recoworld.apps.run.hooks.part_hooks`); it is pickled and called in the worker
    with the task's part folder, so it must be a module-level function or a
    ``functools.partial`` of one. ``lineup`` is as composed: the worker points its SB3
    agents' ``tensorboard_log`` into the part folder
    (:func:`~recoworld.apps.run.hooks.with_training_logs`). The driver puts what the part
    folder holds in ``directory`` when the part is done.
    ``retries``: how many times a part whose worker died runs again (default: :func:`ray_retries`).

    Raises:
        ExperimentConfigError: every failed task raised this same mistake in the config
            (:func:`_config_mistake`; the others are recorded first).
        RolloutsFailed: some tasks raised, or their workers died on every attempt (the
            others are recorded first).
    """
    ray = ensure_ray(cfg.experiment.get("ray_address"))
    retries = ray_retries(cfg.experiment) if retries is None else retries
    # Ray retries a task only when its worker dies: an error the rollout raises would repeat.
    task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(_remote_part)
    attempts = ray.remote(num_cpus=0)(RolloutAttempts).remote()
    resolved = copy.deepcopy(cfg)  # structured nodes kept: instantiate builds their dataclasses
    OmegaConf.resolve(resolved)
    configs = {key: resolved[key] for key in ("simulator", "env")}
    experiment = {"steps": int(cfg.experiment.steps), "log_candidates": bool(cfg.experiment.log_candidates),
                  "tensorboard": bool(cfg.experiment.get("tensorboard", False))}
    shared = ray.put((configs, experiment, catalog, hooks))
    agents = {name: _resolved(agent) for name, agent in lineup.items()}
    for part in parts:  # the workers write nothing here: what a part's hooks delete as it starts, the driver does
        clear_curves(directory.path, part)
    pending = {task.remote(shared, agents[part.agent], part, attempts): part for part in parts}
    failures: dict[Part, str] = {}
    errors: list[Exception] = []
    logged: dict[tuple, Part] = {}  # each worker traceback logged, and the first part that raised it
    try:
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            part = pending.pop(done)
            try:
                outcome, files, attempt = ray.get(done)
            except ray.exceptions.RayError as err:
                failures[part] = _failure(ray, err, part, attempts)
                errors.append(err)
                _log_traceback(ray, err, part, logged)
                continue
            if attempt is not None and attempt > 1:
                log.warning("%s: its Ray worker died (a crash, out of memory or a lost node) and the rollout ran "
                            "again: attempt %d of at most %d; it is seeded, so it logs the rows of an uninterrupted "
                            "rollout", _label(part), attempt, retries + 1)
            _write_whole(directory, files)
            directory.record(part, outcome.rows, outcome.seconds, outcome.simulator, outcome.kernels, outcome.agent_stats)
            on_done(part)
    finally:
        for ref in pending:  # interrupted: stop what has not finished
            # Ray may be gone (a lost cluster): the error that stopped the loop is the one to see.
            with suppress(Exception):
                ray.cancel(ref, force=True)
        with suppress(Exception):
            ray.kill(attempts)
    mistake = _config_mistake(ray, errors)
    if mistake is not None:
        raise mistake
    if failures:
        # In the order of the parts, not of the failures: the same failures, the same message.
        raise RolloutsFailed(f"{len(failures)} of {len(parts)} Ray rollouts failed ("
                             + "; ".join(failures[part] for part in parts if part in failures)
                             + "); the others are recorded: fix the cause, then "
                             + how_to_finish(directory.path, "the run"))


def _write_whole(directory: RunDirectory, files: dict[str, bytes]) -> None:
    """Write ``files`` (paths relative to ``directory``) each under a temporary name, then
    rename them all: a part's files are in the run directory all together or not at all
    (an error while writing one deletes the temporaries written so far)."""
    with ExitStack() as written:
        for name, data in files.items():
            (directory.path / name).parent.mkdir(parents=True, exist_ok=True)
            written.enter_context(directory.replacing(name)).write_bytes(data)


def ray_retries(experiment) -> int:
    """How many times a part whose Ray worker died runs again: ``experiment.ray_retries`` (the
    schema checks it, :class:`~recoworld.conf.schema.ExperimentConfig`), or
    :data:`RAY_RETRIES` when the config has no such key."""
    return int(experiment.get("ray_retries", RAY_RETRIES))


def _label(part: Part) -> str:
    return f"agent={part.agent} seed={part.seed}" + ("" if part.segment is None else f" segment={part.segment}")


def _failure(ray, err, part: Part, attempts) -> str:
    """How a failed part is named in :class:`RolloutsFailed`: the rollout's own error, or the
    system failure of its worker with the number of attempts it died on."""
    text = f"{_label(part)}: {_said(getattr(err, 'cause', None) or err)}"
    if isinstance(err, ray.exceptions.RayTaskError):  # the rollout raised: not retried
        return text
    with suppress(Exception):  # the counter's own node may be lost: then the count is unknown
        count = ray.get(attempts.count.remote(part.file), timeout=CONNECT_TIMEOUT_S)
        text += f" (its worker died on every attempt: {count})"
    return text


def _said(error: BaseException) -> str:
    """An error in one line: its type and its message."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _log_traceback(ray, err, part: Part, logged: dict[tuple, Part]) -> None:
    """Log the traceback of a rollout that raised in its Ray worker, as the local executor
    shows the one of a rollout that raised: where it raised is in the worker's frames, which
    :class:`RolloutsFailed` (one line per part) leaves out. A traceback that an earlier part
    raised alike (the same error type from the same lines, whatever its message: a seed, a
    folder, a step in it) is not repeated: the part's error is named in one line that points
    to it. A mistake in the config
    (:class:`~recoworld.apps.run.checks.ExperimentConfigError`) has its message alone, as with
    the local executor, and a worker that died has no traceback."""
    if not isinstance(err, ray.exceptions.RayTaskError) or isinstance(err.cause, ExperimentConfigError):
        return
    # str() of a task's error is the worker's traceback, coloured for a terminal, each
    # "Traceback (most recent call last):" (one per chained exception) replaced by a header
    # naming the task, its process and node, which differ between parts.
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    where = _TASK_HEADER.search(text)
    frames = _TASK_HEADER.sub("Traceback (most recent call last):", text)
    cause = err.cause if err.cause is not None else err
    # The frames' "  File PATH, line N, in NAME" lines, across the chained exceptions: the
    # messages (which may name the part) are left out.
    alike = (type(cause), tuple(line for line in frames.splitlines() if line.startswith('  File "')))
    if alike in logged:
        log.error("%s raised in its Ray worker as %s did (traceback above): %s", _label(part),
                  _label(logged[alike]), _said(cause))
        return
    logged[alike] = part
    log.error("%s raised in its Ray worker%s:\n%s", _label(part), f" ({where[1]})" if where else "", frames)


#: The header of a Ray task's traceback: ``ray::_remote_part() (pid=123, ip=10.0.0.1)``.
_TASK_HEADER = re.compile(r"^ray::\S*\(\)\s*\((pid=[^)\n]*)\)[ \t]*$", re.MULTILINE)


def _config_mistake(ray, errors: Sequence[Exception]) -> ExperimentConfigError | None:
    """The mistake in the config that every failed task raised alike (the same
    :class:`~recoworld.apps.run.checks.ExperimentConfigError`, e.g. an env that refuses
    ``num_envs=0``: it is no failure of one rollout, and naming it once per part would bury
    it), else None: no task failed, or they failed each in its own way (different errors, a
    dead worker), which :class:`RolloutsFailed` names part by part."""
    # A task's error comes back as a RayTaskError whose ``cause`` is the one it raised.
    causes = [err.cause if isinstance(err, ray.exceptions.RayTaskError) else err for err in errors]
    if not causes or not isinstance(causes[0], ExperimentConfigError):
        return None
    first = causes[0]
    return first if all(type(cause) is type(first) and str(cause) == str(first) for cause in causes) else None


def _resolved(node: DictConfig) -> DictConfig:
    node = copy.deepcopy(node)
    OmegaConf.resolve(node)
    return node


def _remote_part(shared, agent_cfg: DictConfig, part: Part, attempts
                 ) -> tuple[PartOutcome, dict[str, bytes], int | None]:
    """A Ray task: one part, its log and curves written in its part folder (its hooks and
    SB3 agent's ``tensorboard_log`` built for that folder); the files it wrote, by their
    path in the run directory; and the number of this attempt at it (``None`` when the
    counter, :class:`RolloutAttempts`, could not be reached)."""
    import ray

    from recoworld.kernels.placement import one_cpu

    try:
        attempt = ray.get(attempts.begin.remote(part.file))
    except ray.exceptions.RayError:  # the counter's node was lost: the rollout runs all the same
        attempt = None
    configs, experiment, catalog, hooks = shared
    one_cpu()  # the task's one CPU, for torch and the C kernels alike
    make_simulator = instantiate(configs["simulator"], _partial_=True, _convert_="object")
    make_env = instantiate(configs["env"], _partial_=True, _convert_="object")
    settings = OmegaConf.create({"experiment": experiment})
    with part_folder() as folder:
        # The run directory is the driver's: the part's writers are built for this folder instead.
        agent_cfg = with_training_logs(settings, {part.agent: agent_cfg}, folder, part.segment)[part.agent]
        try:
            outcome = rollout_part(make_simulator, make_env, agent_cfg, catalog, part, settings.experiment,
                                   folder / part.file, hooks(folder, part))
        finally:
            for nested in make_simulator.keywords.values():
                if callable(getattr(nested, "close", None)):
                    nested.close()
        files = {path.relative_to(folder).as_posix(): path.read_bytes()
                 for path in sorted(folder.rglob("*")) if path.is_file()}
        return outcome, files, attempt


@contextmanager
def part_folder() -> Iterator[Path]:
    """A new folder, in the temporary directory, where a Ray task writes its part's files (its
    log, its TensorBoard curves) as they would lie in the run directory, deleted when the
    task ends. It is named after the worker's process
    (``recoworld-part-<pid>-XXXXXXXX``): a worker killed mid-rollout (the run interrupted, Ray
    shut down) cannot delete its folder, and the next task on the machine deletes every such
    folder whose process has ended."""
    temporary = Path(tempfile.gettempdir())
    for left in left_by_ended_writers(temporary, re.compile(rf"{PART_FOLDER}(?P<pid>\d+)-\w+")):
        shutil.rmtree(left, ignore_errors=True)  # another task may be deleting it too
    folder = Path(tempfile.mkdtemp(prefix=f"{PART_FOLDER}{os.getpid()}-", dir=temporary))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_executor(experiment) -> None:
    """Refuse an ``experiment.executor=ray`` that cannot start, before the run directory is
    touched: Ray not installed or failing to import, or an ``experiment.ray_address`` that is not one Ray takes or
    where nothing answers (see the module). Nothing to check with the local executor, or with
    a Ray already initialised in this process (it is used as it is).

    Raises:
        ExperimentConfigError: naming the value and the fix.
    """
    if experiment.get("executor", "local") != "ray":
        return
    if _import_ray().is_initialized():
        return
    given = experiment.get("ray_address")
    address = _auto_address() if given == "auto" else given
    if address and address != "local":
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as err:
            named = repr(given) if address == given else f"'auto' (found {address})"
            raise ExperimentConfigError(
                f"experiment.ray_address={named}: nothing answers at {host}:{port} ({err}); start Ray's head "
                f"there (ray start --head), or {ADDRESS_FORMS}") from None


def _auto_address() -> str | None:
    """The address ``auto`` stands for, found as Ray finds it: ``RAY_ADDRESS``, else the
    cluster that ``ray start`` left on this machine, else any running there. None where this
    Ray release has no such helper (it is private to Ray): Ray's own join then refuses it.

    Raises:
        ExperimentConfigError: no cluster to join, naming the fix.
    """
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:
        return None
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise ExperimentConfigError(
            "experiment.ray_address='auto': no Ray cluster runs on this machine and RAY_ADDRESS is unset; start "
            f"the cluster (ray start --head on its head node), or {ADDRESS_FORMS}") from None


def _host_port(address: str) -> tuple[str, int]:
    """The host and port of a Ray address ``HOST:PORT`` or ``ray://HOST:PORT``."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host = port = None
    if parts.scheme not in ("", "ray") or not host or port is None:
        raise ExperimentConfigError(f"experiment.ray_address={address!r} is not an address Ray takes; {ADDRESS_FORMS}")
    return host, port


def _import_ray():
    """The ``ray`` module, imported.

    Raises:
        ExperimentConfigError: Ray is not installed (:data:`NEEDS_RAY`), or is installed but
            its import fails (a dependency missing or of another version), naming that error.
    """
    if importlib.util.find_spec("ray") is None:
        raise ExperimentConfigError(NEEDS_RAY)
    try:
        import ray
    except Exception as err:
        # Installed but broken: "pip install" would say it is already there. Not ImportError
        # alone: a protobuf of another version raises TypeError ("Descriptors cannot be created
        # directly"), a mismatched dependency AttributeError (as torch.load raises anything on
        # a bad file: simulators/calibrated.py).
        raise ExperimentConfigError(
            f"experiment.executor=ray needs Ray, which is installed but cannot be imported ({type(err).__name__}: "
            f"{' '.join(str(err).split())}); repair it: pip install --force-reinstall 'recoworld[ray]' (or run with "
            "experiment.executor=local)") from None
    return ray


def ensure_ray(address: str | None):
    """The ``ray`` module, initialised: as it is if this process already did, else on
    ``address`` or on a local Ray with this machine's cores, keeping the SIGTERM handler in
    force (:func:`_sigterm_handler_kept`: ``kill`` stops the run as Ctrl-C does) and, for a
    local Ray, holding a Ctrl-C until it has started (:func:`_ctrl_c_held`: no Ray process
    outlives the run).

    Raises:
        ExperimentConfigError: Ray is not installed or fails to import, or cannot join
            ``address`` (naming it and the fix).
    """
    ray = _import_ray()
    if not ray.is_initialized():
        with _sigterm_handler_kept():
            if address:
                # Joining starts no process of this machine's: Ctrl-C may stop a join that hangs.
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, TimeoutError, ValueError) as err:
                    raise ExperimentConfigError(
                        f"experiment.ray_address={address!r}: Ray could not join it ({type(err).__name__}: "
                        f"{' '.join(str(err).split())}); start the cluster (ray start --head on its head node), or "
                        f"{ADDRESS_FORMS}") from None
            else:
                # address="local": a Ray of its own even where a cluster runs on this machine or
                # RAY_ADDRESS names one, which ray.init() would join, refusing num_cpus.
                with _ctrl_c_held():
                    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                             log_to_driver=False)
    return ray


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it (a ``KeyboardInterrupt``).

    ``ray.init`` stopped midway can leave the processes of the local Ray it was starting
    running after this process has ended: Ray's exit hook stops the Ray that an ``init`` which
    returned has recorded. Held, Ctrl-C stops the run once Ray is up, and Ray with it. Off the
    main thread, where no handler can be set, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        if held:
            signal.raise_signal(signal.SIGINT)  # to the handler put back: Python's raises KeyboardInterrupt


@contextmanager
def _sigterm_handler_kept() -> Iterator[None]:
    """Put back, when the block ends, the SIGTERM handler in force when it began.

    ``ray.init`` sets SIGTERM handlers of its own: one that exits at once with status 1 (a
    local Ray's processes killed first), and its C++ core's, which aborts the process. A run
    that ``kill`` stops would end ``failed``, where
    :func:`~recoworld.apps.interrupts.kill_stops_like_ctrl_c` has it end ``interrupted`` with
    the advice to resume. A local Ray's processes still stop as the process ends:
    ``ray.shutdown`` is one of its exit hooks. A handler can only be set from the main
    thread, and one set outside Python (``getsignal`` gives None) cannot be put back: Ray's
    stay then.
    """
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
