"""The fidelity report's LLM section on the real embedded model (SmolLM2-135M via llama.cpp):
one user, the 1:1 list, one LLM call. Skipped when llama-cpp-python is not installed."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
pytestmark = pytest.mark.slow

from embedded_model import embedded_gguf  # noqa: E402

from recoworld import Catalog  # noqa: E402
from recoworld.calibration.choice import ChoiceFitConfig  # noqa: E402
from recoworld.apps.fidelity.report import held_out_split  # noqa: E402
from recoworld.apps.calibrate.fit import CalibrationConfig, calibrate  # noqa: E402
from recoworld.apps.fidelity.llm import evaluate_users  # noqa: E402
from recoworld.apps.calibrate.synthetic import simulated_dataset  # noqa: E402
from recoworld.llm import LlamaCppChatModel  # noqa: E402


def test_llm_and_hybrid_users_answer_the_one_to_one_protocol(tmp_path):
    catalog = Catalog.synthetic(60, n_genres=4, feature_dim=4, seed=0)
    data = simulated_dataset(catalog, n_users=30, ratings_per_user=(15, 30), seed=0).data
    config = CalibrationConfig(choice=ChoiceFitConfig(dim=4, l2=0.03), leave_steps=10, leave_users=20)
    world = calibrate(config, data=data, progress=False)
    _, split = held_out_split(world, data)
    llm = LlamaCppChatModel(embedded_gguf(), n_threads=1, schema_in_prompt=False, cache=tmp_path / "cache")
    results = evaluate_users(world, data, split, ("statistical", "hybrid", "llm"), n_users=1, llm=llm, ratios=(1,))
    # The hybrid user's clicks are its statistical core's: the calibrated user's numbers exactly.
    assert results["hybrid"]["auc"] == results["statistical"]["auc"]
    assert results["hybrid"]["1:1"] == results["statistical"]["1:1"]
    # The LLM user answers the list itself (or falls back, counted); it has no choice probability.
    assert results["llm"]["auc"] is None
    assert results["llm"]["llm"]["llm_user_user_steps"] == 1
    assert 0.0 <= results["llm"]["1:1"]["accuracy"] <= 1.0
