"""A key that an agent's ``**kwargs`` pass on (SlateQAgent's to its
SlateQConfig, LLMBandit's to LLMRecommender) is checked like any other: a misspelt one stops
``recoworld run`` in one line naming the nearest key, before the run directory is written."""

import pytest
from hydra import compose, initialize_config_module

import recoworld.conf  # noqa: F401
from recoworld.apps.run.app import main as run_app
from recoworld.apps.run.checks import ExperimentConfigError, check_arguments

TINY = ["world=synthetic", "world.n_items=50", "env.num_envs=4", "experiment=smoke", "experiment.steps=3",
        "experiment.progress=false"]


def composed(*overrides):
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("agent, override, message", [
    ("slateq", "+agent.gama=1", "agent.gama: recoworld.agents.slateq.SlateQAgent has no argument 'gama' (did you "
                                "mean 'gamma'?); its arguments are name, gamma, n_step,"),
    ("retention_slateq", "+agent.gama=1", "agent.gama: recoworld.agents.retention.RetentionSlateQ has no argument "
                                          "'gama' (did you mean 'gamma'?)"),
    ("llm_bandit", "+agent.n_shwn=3", "agent.n_shwn: recoworld.agents.llm_bandit.LLMBandit has no argument 'n_shwn' "
                                      "(did you mean 'n_shown'?); its arguments are guide, n_shown, setup_guide, llm,"),
])
def test_a_key_that_kwargs_pass_on_is_checked_where_they_go(agent, override, message):
    cfg = composed("world=synthetic", f"agent={agent}", override)
    with pytest.raises(ExperimentConfigError) as refused:
        check_arguments(cfg, {agent: cfg.agent})
    assert str(refused.value).startswith(message)


def test_recoworld_run_refuses_a_misspelt_slateq_key_before_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_app([*TINY, "agent=slateq", "+agent.gama=1", f"hydra.run.dir={out}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "recoworld run: error: agent.gama: recoworld.agents.slateq.SlateQAgent has no argument 'gama' (did you " \
           "mean 'gamma'?)" in err
    assert "Traceback" not in err and "Error in call to target" not in err
    assert not (out / "status.json").exists() and not (out / "episodes").exists()


def test_keyword_arguments_follow_kwargs_into_a_keyword_config_and_up_the_bases():
    import dataclasses

    from recoworld.agents.base import Recommender
    from recoworld.apps.run.checks import keyword_arguments

    @dataclasses.dataclass
    class Settings:
        alpha: float = 1.0
        beta: int = 2
        derived: int = dataclasses.field(default=0, init=False)  # not an argument

    class Configured(Recommender):
        keyword_config = Settings

        def __init__(self, name=None, **settings):
            self.settings = Settings(**settings)

    class Extended(Configured):  # hands its **kwargs on to Configured's
        def __init__(self, extra=0, **kwargs):
            super().__init__(**kwargs)

    def factory(size, **anything):
        return anything

    assert keyword_arguments(Configured) == (["name", "alpha", "beta"], False)
    assert keyword_arguments(Extended) == (["extra", "name", "alpha", "beta"], False)
    assert keyword_arguments(factory) == (["size"], True)
