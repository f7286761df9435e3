"""The README's two set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    # Besides the README's command, CI only installs the system Chromium the viewer's test drives.
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd ", "export ", "command -v chromium "))]
    assert len(ci_lines) == 1, "CI must run exactly one command: the README's"
    assert f"\n{ci_lines[0]}\n" in readme


def test_readme_has_a_command_that_installs_and_runs_the_default_experiment():
    assert "\npip install torch==2.13.0 && pip install -e . && recoworld run\n" in (ROOT / "README.md").read_text()


def plugin_blocks() -> list[str]:
    """The Python code blocks of the README's section "Plug in your own simulator", in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Plug in your own simulator\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n```", 1)[0] for block in section.split("```python\n")[1:]]


def test_readme_custom_simulator_and_agent_run_exactly_as_written(capsys):
    blocks = plugin_blocks()
    assert len(blocks) == 2, "the section shows a custom simulator, then a custom agent"
    namespace = {"__name__": "readme_plugins"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    interactions, total_reward = capsys.readouterr().out.split()
    assert int(interactions) == namespace["result"].interactions > 0
    assert float(total_reward) == namespace["result"].total_reward


def test_readme_lists_every_response_field():
    from dataclasses import fields

    from recoworld.types import Response

    simulator = plugin_blocks()[0]
    assert [f.name for f in fields(Response) if f"{f.name}=" not in simulator] == []
