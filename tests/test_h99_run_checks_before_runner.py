"""``recoworld run`` answers a mistake the composed config shows alone (``experiment.steps=0``,
an empty seed list) before it loads torch and the runner, with the schema's own message."""

import subprocess
import sys

import pytest

from recoworld.conf.schema import ExperimentConfig


@pytest.mark.parametrize("override, given", [
    ("experiment.steps=0", {"steps": 0}),
    ("experiment.seeds=[]", {"seeds": []}),
])
def test_run_refuses_the_experiment_settings_without_importing_torch(tmp_path, override, given):
    with pytest.raises(ValueError) as schema:
        ExperimentConfig(**given)
    code = ("import sys\nfrom recoworld.apps.cli import main\n"
            f"try:\n    status = main(['run', {override!r}])\nexcept SystemExit as exit_:\n    status = exit_.code\n"
            "print('exit status:', status)\n"
            "print(sorted(m for m in ('torch', 'recoworld.apps.run.runner') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.splitlines() == ["exit status: 1", "[]"], done.stderr
    assert done.stderr.splitlines()[-1] == f"recoworld run: error: {schema.value}"
