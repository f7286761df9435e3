"""What the distribution promises around the code: licence, version, dependencies, exports, info layout."""

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3.common.vec_env import VecEnv

import recoworld
from recoworld.apps.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SOURCES = ("recoworld", "simulators", "agents", "envs", "conf", "tests", "benchmarks")


def test_licence_is_the_full_apache_2_text_the_metadata_names():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(re.findall(r"^\s+\d\. ", text, re.M)) >= 9
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    readme = (ROOT / "README.md").read_text()
    assert "## Licence" in readme and "MovieLens" in readme.split("## Licence")[1]


def test_version_has_one_source_printed_by_the_command_and_headed_in_the_changelog(capsys):
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "recoworld.__version__"}
    assert cli(["--version"]) == 0
    assert capsys.readouterr().out == f"recoworld {recoworld.__version__}\n"
    assert f"## [{recoworld.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_package_is_typed():
    assert (ROOT / "recoworld" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["recoworld"]


def dependency(name: str) -> str | None:
    return next((d for d in PYPROJECT["project"]["dependencies"] if re.match(rf"{name}\b", d)), None)


def imported_modules() -> set[str]:
    names = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def test_dependencies_need_gymnasium_1_1_and_hold_nothing_unused():
    assert dependency("gymnasium").startswith("gymnasium>=1.1"), "AutoresetMode needs gymnasium 1.1"
    assert dependency("tqdm") is None and "tqdm" not in imported_modules()
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(d.startswith("minari") for d in extras["minari"])
    assert {d.split(">")[0].split("[")[0] for d in extras["test"]} >= {"pytest", "minari", "playwright"}


def test_vector_infos_carry_a_mask_for_every_key_that_gymnasium_wrappers_read():
    env = RecordEpisodeStatistics(gym.make_vec("RecoWorld/Slate-v0", num_envs=3, max_steps=2,
                                               vectorization_mode="vector_entry_point"))
    _, info = env.reset(seed=0)
    done = np.zeros(3, dtype=bool)
    for step in range(1, 4):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        keys = [k for k in info if not k.startswith("_") and k != "episode"]
        assert keys and all(info[f"_{k}"].dtype == bool and info[f"_{k}"].all() for k in keys)
        assert not [k for k in info if k.startswith("_") and k[1:] not in info]
        done = terminated | truncated
        if done.any():
            break
    # Gymnasium's wrapper reads the layout: it reports the finished users' episodes under its own mask.
    assert done.any() and info["_episode"].tolist() == done.tolist()
    np.testing.assert_array_equal(info["episode"]["l"][done], step)


def test_sb3_vec_env_is_exported_and_loads_stable_baselines3_only_when_asked_for():
    from recoworld.envs import SB3SlateVecEnv, make_training_env  # noqa: F401

    venv = SB3SlateVecEnv(num_envs=2, action_format="scores")
    assert isinstance(venv, VecEnv) and venv.reset()["candidate_ids"].shape[0] == 2
    code = "import sys, recoworld.envs; print('stable_baselines3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


#: What ``recoworld run`` answers before it runs anything: its help, its composed config, a mistake in it.
BEFORE_A_RUN = (["run", "--help"], ["run", "--cfg", "job"], ["run", "experiment.stpes=3"])


def test_run_answers_help_its_config_and_a_config_mistake_without_loading_torch_or_the_runner():
    # The CLI's own path: Hydra composes the default config, checked by the schema, or refuses an override.
    code = ("import sys\nfrom recoworld.apps.cli import main\n"
            f"for argv in {BEFORE_A_RUN}:\n"
            "    try:\n        status = main(argv)\n    except SystemExit as exit_:\n        status = exit_.code\n"
            "    print('exit status:', status)\n"
            "print(sorted(m for m in ('torch', 'scipy', 'matplotlib', 'pandas', 'recoworld.apps.run.runner') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.findall(r"^exit status: (\d)$", out, re.M) == ["0", "0", "1"]
    assert "== Configuration groups ==" in out and "experiment:\n  agents:" in out
    assert "did you mean experiment.steps?" in done.stderr
    assert out.splitlines()[-1] == "[]"  # the modules of those five that were loaded


#: Benchmark scripts parse their options with argparse; the leaderboard hands its to the Hydra app instead,
#: and ``_name.py`` files are modules the scripts share, not scripts.
ARGPARSE_BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")
                             if p.name != "agents_leaderboard.py" and not p.name.startswith("_"))


@pytest.mark.parametrize("script", ARGPARSE_BENCHMARKS)
def test_every_benchmark_answers_help_with_its_usage_instead_of_running(script, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/SCRIPT` sees its folder
    spec = importlib.util.spec_from_file_location(f"benchmark_{script[:-3]}", ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: {script}")
