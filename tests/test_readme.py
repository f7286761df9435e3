"""The README's two set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert len(ci_lines) == 1, "CI must run exactly one command: the README's"
    assert f"\n{ci_lines[0]}\n" in readme


def test_readme_has_a_command_that_installs_and_runs_the_default_experiment():
    assert "\npip install torch==2.13.0 && pip install -e . && recoworld run\n" in (ROOT / "README.md").read_text()
