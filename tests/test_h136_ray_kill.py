"""``kill`` under ``experiment.executor=ray``: ``ray.init`` sets a SIGTERM handler of its own
(exit at once), which would end the run ``failed``; the run's own handler is put back, so the
run ends ``interrupted`` as with the local executor, and Ray's processes still stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

#: Sends the process SIGTERM as the driver first waits on its Ray tasks, after writing the
#: ids of the processes below it (Ray's local head: raylet, GCS, workers) to argv[2].
KILLED_WHILE_WAITING = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import ray
    from recoworld.apps import cli

    def below(pid):
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                child = int(stat.parent.name)
                children += [child, *below(child)]
        return children

    run, started = sys.argv[1:]  # the run app sets sys.argv to its own
    wait = ray.wait

    def killed_while_waiting(*args, **kwargs):
        ray.wait = wait
        Path(started).write_text(" ".join(map(str, below(os.getpid()))))
        os.kill(os.getpid(), signal.SIGTERM)
        return wait(*args, **kwargs)

    ray.wait = killed_while_waiting
    sys.exit(cli.main(["run", "world=synthetic", "env.num_envs=4", "experiment.steps=100000", "experiment.seeds=[0]",
                       "experiment.progress=false", "experiment.plots=false", "agent=random",
                       "experiment.executor=ray", f"hydra.run.dir={run}"]))
""")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="lists Ray's processes through /proc")
def test_sigterm_to_a_ray_run_ends_it_interrupted_with_status_130_and_stops_rays_processes(tmp_path):
    run, started = tmp_path / "run", tmp_path / "ray_processes"
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", KILLED_WHILE_WAITING, str(run), str(started)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 130, done.stderr[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted", status
    assert f"finish the run with experiment.resume=true hydra.run.dir={run}" in " ".join(done.stdout.split())
    assert done.stderr.endswith("recoworld run: interrupted\n")
    ray_processes = [int(pid) for pid in started.read_text().split()]
    assert ray_processes  # a local Ray was started below the driver
    # Ray's exit hook stops its head (raylet, GCS) before the driver ends; a worker ends when
    # it finds its raylet gone.
    deadline = time.monotonic() + 60
    while any(map(_running, ray_processes)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in ray_processes if _running(pid)]
