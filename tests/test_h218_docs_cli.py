"""What the docs and the command line say matches what they do: a world that fails when it is
built ends ``recoworld run`` in one line, as an env or an agent does; the help of ``recoworld
ope`` names its subcommand and defaults; ``InstructEnv`` refuses a wrong argument with the
``ValueError`` its docstring names; the package docstring names the envs it registers."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import recoworld
import recoworld.simulators
from recoworld.apps.run.app import main as run_app

SMOKE = ["experiment=smoke", "env.num_envs=4", "experiment.progress=false", "experiment.plots=false"]


def _status(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_a_world_that_refuses_its_setting_ends_the_run_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "recoworld.apps.cli", "run", "world=synthetic", "world.n_genres=0", *SMOKE,
               f"hydra.run.dir={run_dir}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    # Before: Hydra's "Error executing job ... Error in call to target ..." block, error_type InstantiationException.
    assert "Error in call to target" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "recoworld run: error: building the world: Catalog.synthetic.n_genres=0: must be an integer in [1, 16]")
    saved = _status(run_dir)
    assert (saved["state"], saved["error_type"]) == ("failed", "ExperimentConfigError")
    assert saved["error"] == "building the world: Catalog.synthetic.n_genres=0: must be an integer in [1, 16]"


def test_a_damaged_world_folder_ends_the_run_in_one_line_naming_the_file(log_world, tmp_path, capsys):
    world = tmp_path / "bad-world"
    shutil.copytree(log_world[0], world)
    (world / "tensors.pt").write_bytes((world / "tensors.pt").read_bytes()[:1000])
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_app(["world=movielens", f"world.path={world}", *SMOKE, f"hydra.run.dir={run_dir}"])
    err = capsys.readouterr().err
    assert "Error in call to target" not in err
    assert err.strip().splitlines()[-1].startswith(
        f"recoworld run: error: building the world: {world / 'tensors.pt'} cannot be read (")
    assert _status(run_dir)["error_type"] == "ExperimentConfigError"


REPO = Path(__file__).resolve().parents[1]


def _commands_naming_missing_scripts(text: str) -> list[str]:
    """The ``.py`` paths that ``python ...`` commands in ``text`` name, relative to the
    repository root, that are not files of the repository."""
    missing = []
    for line in text.splitlines():
        head, python, command = line.partition("python ")
        if not python or (head.strip() and not head.endswith((" ", "`"))):
            continue
        for script in re.findall(r"[\w./-]+\.py\b", command):
            path = (REPO / script).resolve()
            if not (path.is_relative_to(REPO) and path.is_file()):
                missing.append(script)
    return missing


def test_the_benchmark_commands_name_only_scripts_of_the_repository():
    # Before: --reference ../shared/perf/numpy_reference.py, a file of the project's workspace.
    assert _commands_naming_missing_scripts((REPO / "README.md").read_text()) == []
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        assert _commands_naming_missing_scripts(ast.get_docstring(ast.parse(script.read_text())) or "") == [], script
    doc = ast.get_docstring(ast.parse((REPO / "benchmarks" / "sim_throughput.py").read_text()))
    assert "``--reference PATH`` is optional: without it the script prints the figures alone." in doc


def test_the_users_configs_import_neither_torch_nor_the_simulators_nor_an_llm_backend():
    code = ("import json, sys, importlib; importlib.import_module(sys.argv[1]); "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('recoworld.llm') "
            "or m.startswith('recoworld.simulators.'))))")
    loaded = {}
    for name in ("statistical_config", "population", "llm_config", "hybrid_config"):
        done = subprocess.run([sys.executable, "-c", code, f"recoworld.simulators.{name}"], capture_output=True,
                              text=True, timeout=120, check=True)
        loaded[name] = json.loads(done.stdout)
    backends = ("openai_backend", "llama_cpp_backend", "transformers_backend", "in_process", "server_pool")
    for name, modules in loaded.items():
        assert "torch" not in modules and not {"recoworld.simulators.llm_user", "recoworld.simulators.hybrid",
                                              "recoworld.simulators.statistical"} & set(modules), name
        assert not [m for m in modules if m.rsplit(".", 1)[-1] in backends], name
    assert not [m for m in loaded["statistical_config"] + loaded["population"] if m.startswith("recoworld.llm")]
    assert "recoworld.llm" in loaded["llm_config"] and "recoworld.llm" in loaded["hybrid_config"]
    # The package's docstring says as much (before: "does not import ... the LLM layer" for all four).
    doc = " ".join(recoworld.simulators.__doc__.split())
    assert "imports neither the simulators nor torch" in doc
    assert "``llm_config`` and ``hybrid_config`` import the LLM layer's core (:mod:`recoworld.llm`" in doc


def test_ope_help_names_the_evaluate_subcommand_and_the_default_output_folder(capsys):
    from recoworld.apps import cli

    with pytest.raises(SystemExit):
        cli.main(["ope", "--help"])
    assert "recoworld ope evaluate --log PATH --policy POLICY" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["ope", "evaluate", "--help"])
    assert "--out OUT output directory (default: ope_evaluation)" in " ".join(capsys.readouterr().out.split())


def test_the_configs_comment_names_each_multirun_launcher_as_the_readme_does():
    comment = " ".join(line.strip().lstrip("# ") for line in (REPO / "conf" / "config.yaml").read_text().splitlines()
                       if line.strip().startswith("#"))
    # Before: "ray (a Ray cluster)", and no ray_cluster; ray starts a local Ray, ray_cluster joins one.
    assert "ray (a local Ray started with this machine's cores)" in comment
    assert "ray_cluster (a running Ray cluster" in comment
    assert (REPO / "conf" / "hydra" / "launcher" / "ray_cluster.yaml").is_file()


@pytest.mark.parametrize("argument", [{"action_format": "scores"}, {"candidate_features": False}])
def test_instruct_env_refuses_the_slate_envs_own_arguments_with_a_value_error(argument):
    (name, value), = argument.items()
    # Before: TypeError, where the docstring says ValueError.
    with pytest.raises(ValueError, match=re.escape(f"InstructEnv takes no {name}= ({name}={value!r}); its actions "
                                                   f"are item ids in text: leave {name} out")):
        gym.make("RecoWorld/Instruct-v0", **argument)


def test_the_package_docstring_names_every_env_it_registers():
    registered = [env_id for env_id in gym.registry if env_id.startswith("RecoWorld/")]
    assert sorted(registered) == ["RecoWorld/Instruct-v0", "RecoWorld/Slate-v0"]
    for env_id in registered:
        assert f"``{env_id}``" in recoworld.__doc__, env_id


INTERRUPTED_CALL = """
import asyncio, gc, os, signal, sys
from recoworld.llm.scripted import ScriptedChatModel

class Interrupted(ScriptedChatModel):
    async def _generate(self, calls):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C (or kill, as recoworld run takes it) mid-call
        await asyncio.sleep(60)

model = Interrupted(lambda call: "ok")
try:
    model.chat_many([[{"role": "user", "content": "hi"}]])
except KeyboardInterrupt:
    print("interrupted")
model.close()
gc.collect()
print("closed")
"""


def test_a_chat_model_closed_after_an_interrupted_call_leaves_no_pending_task():
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_CALL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["interrupted", "closed"], done
    # Before: "Task was destroyed but it is pending! task: <Task pending ... ChatModel.achat_many() ...>".
    assert done.stderr == ""
