"""``recoworld run`` with LLM and hybrid users: the root ``llm`` node, the simulator's LLM
metrics in ``metrics.json``, closing simulators and their model, config errors, and API keys
kept out of the run directory.

Most tests run hybrid users on a scripted chat model, built by the runner from the root
``llm`` node (``llm._target_`` points at a factory below) exactly as it builds a real one;
the last test runs LLM users on the embedded SmolLM2 model.
"""

from __future__ import annotations

import json

import pytest

from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.secrets import REDACTED, redact_secrets
from recoworld.llm import Budget, ScriptedChatModel
from recoworld.logs import read_log
from recoworld.simulators import HybridUsers, LLMUserError

SECRET = "sk-test-not-a-real-key-7f3a"
VOICE = {"mindset": "Restless after the same old picks.", "instruction": "Shake it up with something new!"}
# Every user who senses they are about to leave speaks (the core decides when; the model only voices it).
SPEAKING = ["simulator.statistical.voice_probability=1.0", "simulator.statistical.instruction_threshold=0.0"]
TINY = ["world=synthetic", "simulator=hybrid", "env.num_envs=4", "env.slate_size=3", "env.num_candidates=10",
        "experiment.steps=4", "experiment.progress=false", "experiment.plots=false", "llm.cache_dir=null", *SPEAKING]

models: list[ScriptedChatModel] = []


class ClosingScriptedModel(ScriptedChatModel):
    """A scripted model that remembers being closed."""

    closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


def scripted_voice(max_calls=None, **settings):
    """Stands in for ``make_chat_model``: a model that voices every disengagement the same way."""
    models.append(ClosingScriptedModel(lambda call: json.dumps(VOICE), budget=Budget(max_calls=max_calls)))
    return models[-1]


def scripted_nonsense(**settings):
    """Stands in for ``make_chat_model``: a model that never replies in JSON."""
    models.append(ClosingScriptedModel(lambda call: "nope"))
    return models[-1]


@pytest.fixture
def closes(monkeypatch) -> list[HybridUsers]:
    """Every HybridUsers whose close() was called, once per call."""
    closed = []
    original = HybridUsers.close

    def close(self):
        closed.append(self)
        original(self)

    monkeypatch.setattr(HybridUsers, "close", close)
    models.clear()
    return closed


def target(factory) -> str:
    return f"llm._target_={__name__}.{factory.__name__}"


def test_hybrid_run_writes_llm_metrics_per_rollout_and_closes_simulators_and_model(tmp_path, closes):
    run_app([*TINY, "experiment.agents=[random,most_popular]", "experiment.seeds=[0,1]", target(scripted_voice),
             f"hydra.run.dir={tmp_path}"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (model,) = models
    calls = []
    for agent in metrics["agents"].values():
        simulator = agent["simulator"]
        # One model serves all four rollouts; each reports only its own use of it.
        assert simulator["llm_calls"]["per_seed"] == simulator["hybrid_calls"]["per_seed"]
        assert simulator["llm_total_tokens"]["mean"] > 0
        assert simulator["hybrid_failures"]["per_seed"] == [0.0, 0.0]
        assert {"llm_cache_hits", "llm_latency_s_mean", "llm_structured_failures",
                "hybrid_fallback_steps"} <= set(simulator)
        calls += simulator["llm_calls"]["per_seed"]
    assert sum(calls) == len(model.calls) > 0
    log = read_log(tmp_path)
    assert (log["instruction_text"] == VOICE["instruction"]).sum() == len(model.calls)
    assert len(closes) == 4 and len({id(s) for s in closes}) == 4  # each rollout's simulator, once
    assert model.closed == 1  # the shared model, when the run ends


def test_a_failing_run_still_closes_its_simulator_and_model(tmp_path, closes, capsys):
    with pytest.raises(SystemExit):
        run_app([*TINY, "agent=random", "experiment.seeds=[0]", "simulator.config.on_failure=fail",
                 target(scripted_nonsense), f"hydra.run.dir={tmp_path}"])
    assert LLMUserError.__name__ in capsys.readouterr().err
    assert len(closes) == 1 and models[0].closed == 1
    assert not (tmp_path / "metrics.json").exists()


def stopped(capsys, tmp_path, *overrides: str) -> str:
    """What a run of TINY (one seed of the random agent) with ``overrides`` printed on
    stderr; it must have stopped with exit status 1."""
    with pytest.raises(SystemExit) as exit_info:
        run_app([*TINY, "agent=random", "experiment.seeds=[0]", *overrides, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 1
    return capsys.readouterr().err


def test_a_run_whose_llm_steps_fall_back_stops_with_the_first_error_and_its_fix(tmp_path, closes, capsys):
    err = stopped(capsys, tmp_path, "experiment.steps=6", "simulator.config.fallback_min_steps=2",
                  target(scripted_nonsense))
    assert "recoworld run: stopped: FallbackShareExceeded: " in err and "fell back to the statistical response" in err
    assert "Fix: the model's replies did not follow the schema" in err and "max_fallback_share" in err
    assert len(closes) == 1 and models[0].closed == 1
    assert not (tmp_path / "metrics.json").exists()


def test_a_short_run_whose_llm_steps_all_fell_back_fails_when_its_rollout_ends(tmp_path, closes, capsys):
    # Fewer user-steps than fallback_min_steps (20): only the check at the rollout's end sees them.
    err = stopped(capsys, tmp_path, "experiment.steps=2", target(scripted_nonsense))
    assert "recoworld run: stopped: FallbackShareExceeded: " in err
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["error_type"] == "FallbackShareExceeded"
    assert status["parts"]["complete"] == [] and not (tmp_path / "metrics.json").exists()


def test_a_spent_llm_budget_stops_the_run_with_its_message(tmp_path, closes, capsys):
    assert "stopped: call budget reached" in stopped(capsys, tmp_path, "llm.max_calls=1", target(scripted_voice))
    assert len(closes) == 1 and models[0].closed == 1


@pytest.mark.parametrize("agent, load", [("ppo", ""), ("a2c", " agent.algo=A2C")])
def test_an_sb3_agent_that_would_train_on_hybrid_users_is_refused_with_the_train_then_load_commands(
        agent, load, tmp_path, closes, capsys):
    with pytest.raises(SystemExit):
        run_app([*TINY, f"agent={agent}", "experiment.seeds=[0]", target(scripted_voice), f"hydra.run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert (f"agent={agent} trains on a copy of the run's users before it is scored, but simulator=hybrid's users "
            "speak through a chat model") in err
    assert (f"recoworld run agent={agent} simulator=statistical +agent.save_path=model.zip, then recoworld run "
            f"agent=sb3_model agent.load_path=model.zip{load} simulator=hybrid") in err
    assert not (tmp_path / "status.json").exists(), "refused before the run began"


def test_the_planning_oracle_on_hybrid_users_is_refused_before_the_run(tmp_path, closes, capsys):
    with pytest.raises(SystemExit):
        run_app([*TINY, "agent=planning_oracle", "experiment.seeds=[0]", target(scripted_voice),
                 f"hydra.run.dir={tmp_path}"])
    assert ("agent=planning_oracle plans on copies of the run's users at every step, but simulator=hybrid's users "
            "speak through a chat model, which cannot be copied and would be called at every simulated step; run it "
            "on simulator=statistical or calibrated") in capsys.readouterr().err
    assert not (tmp_path / "status.json").exists(), "refused before the run began"


def test_an_api_key_given_in_the_config_never_reaches_the_run_directory(tmp_path, closes):
    run_app([*TINY, "agent=random", "experiment.seeds=[0]", "llm.backend=openai", "llm.model=served-model",
             f"llm.api_key={SECRET}", target(scripted_voice), f"hydra.run.dir={tmp_path}"])
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json"} <= {
        p.relative_to(tmp_path).as_posix() for p in files}
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), path
    assert f"api_key: {REDACTED}" in (tmp_path / ".hydra/config.yaml").read_text()
    assert f"llm.api_key={REDACTED}" in (tmp_path / ".hydra/overrides.yaml").read_text()


def test_redact_secrets_blanks_keys_and_key_overrides_but_keeps_env_interpolations():
    tree = {"llm": {"api_key": SECRET, "model": "m"}, "agent": {"llm": {"api_key": None}},
            "env_key": {"api_key": "${oc.env:MY_KEY}"}, "overrides": [f"llm.api_key={SECRET}", "env.num_envs=2"],
            "override_dirname": f"env.num_envs=2,llm.api_key={SECRET},llm.model=m"}
    assert redact_secrets(tree) == {
        "llm": {"api_key": REDACTED, "model": "m"}, "agent": {"llm": {"api_key": None}},
        "env_key": {"api_key": "${oc.env:MY_KEY}"}, "overrides": [f"llm.api_key={REDACTED}", "env.num_envs=2"],
        "override_dirname": f"env.num_envs=2,llm.api_key={REDACTED},llm.model=m"}


@pytest.mark.parametrize("simulator, override, named", [
    ("llm", "llm.backnd=openai", "backnd"),
    ("hybrid", "llm.backnd=openai", "backnd"),
    ("llm", "simulator.config.on_failur=fail", "on_failur"),
    ("hybrid", "simulator.config.memory.max_interaction=3", "max_interaction"),
    ("llm", "simulator.statistical.leave_bse=1.0", "leave_bse"),
    ("hybrid", "simulator.config.temperature=hot", "temperature"),
])
def test_llm_simulator_config_typos_are_errors_that_name_the_key(simulator, override, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_app([f"simulator={simulator}", override, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 1
    assert named in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_simulator_llm_overrides_point_to_the_root_llm_node(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_app(["simulator=llm", "simulator.llm.backend=openai", f"hydra.run.dir={tmp_path}"])
    assert "override llm.backend instead" in capsys.readouterr().err


# ----------------------------------------------------------- the embedded model
@pytest.mark.slow
def test_llm_users_run_on_the_embedded_model(tmp_path):
    """One user, one step, on SmolLM2-135M in process (the root llm node's default): every
    user-step ends in a valid reply or a counted fallback, and metrics.json accounts for it.
    (One step: each is a generation of a few hundred grammar-constrained tokens on a CPU,
    and a second would exercise no wiring of the runner that the first does not.)"""
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
    run_app(["simulator=llm", "experiment=llm", "agent=random", "world=synthetic", "world.n_genres=4",
             "env.num_envs=1", "env.slate_size=2", "experiment.steps=1", "experiment.progress=false",
             "llm.n_threads=1", f"llm.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    agent = metrics["agents"]["random"]
    simulator = {key: value["mean"] for key, value in agent["simulator"].items()}
    # One request per user and env step.
    assert simulator["llm_user_user_steps"] == simulator["llm_requests"] == 1 >= agent["interactions"]
    assert simulator["llm_calls"] >= 1  # repairs make more calls
    assert simulator["llm_replies"] + simulator["llm_user_failures"] == 1
    assert simulator["llm_user_fallback_steps"] == simulator["llm_user_failures"]
    assert simulator["llm_prompt_tokens"] > 0 and simulator["llm_latency_s_mean"] > 0
