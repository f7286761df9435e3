"""``recoworld fidelity``'s LLM users whose answers fell back to their statistical twin: the
share is checked at the end of the lists however few users were sampled, the command stops
with no report and a fix in its own flags, and ``--max-fallback-share`` accepts them."""

from __future__ import annotations

import json
import re
import socket

import pytest

from recoworld.apps.cli import main as cli_main
from recoworld.apps.fidelity.llm import evaluate_users
from recoworld.apps.fidelity.report import _fallback_message, held_out_split
from recoworld.llm import ScriptedChatModel
from recoworld.simulators.llm_shared import FallbackShareExceeded, LLMVoiceConfig, StepFailure

from fake_openai_server import Answer, FakeOpenAIServer
from tests.test_probe_reports import world_dir  # noqa: F401  (a fixture: the small world and its log file)

SMALL = ["--agents", "", "--splits", "", "--no-sessions", "--quiet", "--users", "statistical,llm"]


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The LLM cache in the test's folder, never the user's."""
    monkeypatch.setenv("RECOWORLD_CACHE", str(tmp_path / "cache"))


def fidelity(world_dir, out, *argv) -> int:
    world, _ = world_dir
    return cli_main(["fidelity", "--world", str(world), "--out", str(out), *SMALL, *argv])


def openai(base_url: str) -> list[str]:
    return ["--llm", "backend=openai", "--llm", f"base_url={base_url}", "--llm", "model=m", "--llm", "max_retries=0"]


def unreachable_stop(port: int, fallbacks: int, out) -> str:
    """What fidelity says when none of ``fallbacks`` answers reached the server at ``port``."""
    url = f"http://127.0.0.1:{port}/v1"
    return (f"recoworld fidelity: stopped before the report was complete, nothing was written to {out}: "
            f"{fallbacks} of {fallbacks} LLM user-steps (100%) fell back to the statistical response, more than "
            "--max-fallback-share=0.05 allows: the results would not be the LLM's. The first failure (slot 0, step "
            "0): m: the backend failed after 0 generation(s): TransientBackendError: cannot reach "
            f"{url}/chat/completions: Connection error. (All connection attempts failed). Fix: check that an "
            f"OpenAI-compatible server is running at {url} (--llm base_url=...) and answers within --llm "
            "timeout_s=60.0. To accept fallbacks, raise --max-fallback-share (1.0 accepts every fallback; the "
            "report's LLM use line shows the share)")


def own_lines(err: list[str]) -> list[str]:
    """``err`` without logging's reports of a handler that other in-process code of this
    worker left on a stream pytest has since closed ("--- Logging error ---" through its
    "Arguments:" line; `recoworld run` left Hydra's until it restored the root logger): those
    tracebacks are the test session's, not fidelity's."""
    lines, skipping = [], False
    for line in err:
        if line.strip() == "--- Logging error ---":
            skipping = True
        elif not skipping:
            lines.append(line)
        elif line.lstrip().startswith("Arguments:"):
            skipping = False
    return lines


@pytest.mark.parametrize("n_users", [2, 8])
def test_llm_users_behind_an_unreachable_server_stop_fidelity_with_no_report(world_dir, tmp_path, closed_port,
                                                                              capsys, n_users):
    # 2 users make 6 user-steps (one per 1:m list), under the 20 counted before the share is
    # checked during the lists: only the check at their end sees them. 8 users make 24.
    out = tmp_path / "report"
    assert fidelity(world_dir, out, "--llm-users", str(n_users), *openai(f"http://127.0.0.1:{closed_port}/v1")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == unreachable_stop(closed_port, 3 * n_users, out)
    assert "Traceback" not in "\n".join(own_lines(err))
    assert "simulator.config" not in err[-1] and "llm.base_url" not in err[-1]
    assert not out.exists()


def test_accepted_fallbacks_are_reported_with_their_share(world_dir, tmp_path, closed_port):
    out = tmp_path / "report"
    assert fidelity(world_dir, out, "--llm-users", "2", "--max-fallback-share", "1.0",
                    *openai(f"http://127.0.0.1:{closed_port}/v1")) == 0
    usage = json.loads((out / "metrics.json").read_text())["user_kinds"]["llm"]["llm"]
    assert usage["fallback_share"] == 1.0 and usage["llm_user_fallback_steps"] == 6
    assert "fallback_share 1" in (out / "report.md").read_text()


def watches_everything(body: dict) -> Answer:
    """A server whose user would watch every item of the list it is shown."""
    ids = re.findall(r'\{"id": (\d+), "item"', body["messages"][-1]["content"])
    return Answer.chat(json.dumps({"reactions": {i: {"action": "click", "reason": "why not"} for i in ids},
                                   "mindset": "Happy.", "satisfaction": 4, "leave": False, "instruction": None}))


def test_llm_users_answering_for_themselves_are_reported_as_theirs(world_dir, tmp_path):
    out = tmp_path / "report"
    with FakeOpenAIServer([watches_everything]) as server:
        assert fidelity(world_dir, out, "--llm-users", "2", *openai(server.base_url)) == 0
    users = json.loads((out / "metrics.json").read_text())["user_kinds"]
    assert users["llm"]["llm"]["fallback_share"] == 0.0 and users["llm"]["llm"]["llm_user_user_steps"] == 6
    for m in (1, 3, 9):  # every item watched: each held-out item found, among 1 + m answers of yes
        assert users["llm"][f"1:{m}"]["recall"] == 1.0
        assert users["llm"][f"1:{m}"]["precision"] == pytest.approx(1 / (1 + m))


def test_evaluate_users_checks_the_share_at_the_end_of_the_lists(small_world):
    world, data = small_world
    _, split = held_out_split(world, data)
    nonsense = ScriptedChatModel(lambda call: "not JSON", max_repairs=0)
    with pytest.raises(FallbackShareExceeded, match=r"^3 of 3 LLM user-steps \(100%\) fell back .* more than "
                                                    r"max_fallback_share=0.05 allows"):
        evaluate_users(world, data, split, ["llm"], n_users=1, llm=nonsense)
    # accepted, the share is reported
    share = evaluate_users(world, data, split, ["llm"], n_users=1, llm=nonsense, max_fallback_share=1.0)
    assert share["llm"]["llm"]["fallback_share"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--max-fallback-share", "1.5"], "--max-fallback-share 1.5; give a share in [0, 1] (1.0 accepts every "
     "fallback)"),
    (["--max-fallback-share", "nan"], "--max-fallback-share nan; give a share in [0, 1] (1.0 accepts every "
     "fallback)"),
    (["--users", "statistical,hybrid", "--max-fallback-share", "0.5"], "--max-fallback-share 0.5 bounds the LLM "
     "users' fallbacks, but --users 'statistical,hybrid' has none; add them, e.g. --users statistical,hybrid,llm"),
    (["--llm", "max_fallback_share=0.5"], "--llm 'max_fallback_share=0.5': max_fallback_share is the LLM users' "
     "setting, not their model's; give --max-fallback-share 0.5"),
])
def test_bad_fallback_shares_are_refused_before_the_world_is_read(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fidelity", "--world", str(tmp_path / "none"), "--out", str(tmp_path / "r"), *SMALL, *argv])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"recoworld fidelity: error: {message}"


def test_the_fix_names_fidelitys_flags_and_leaves_urls_alone():
    hint = ("check llm.base_url=http://llm.example.com/v1 (llm.base_url) and my-llm.host; lower llm.max_concurrency "
            "or the backend's settings (llm.*)")
    error = FallbackShareExceeded(StepFailure(0, 7, 0, "boom", (), "fallback", hint), 3, 4,
                                  LLMVoiceConfig(max_fallback_share=0.5), "LLM user-steps")
    # recoworld run's message is unchanged: its own keys
    assert str(error).endswith(f"Fix: {hint}. To accept fallbacks, raise simulator.config.max_fallback_share (1.0 "
                               "never stops a run)")
    assert _fallback_message(error) == (
        "3 of 4 LLM user-steps (75%) fell back to the statistical response, more than --max-fallback-share=0.5 "
        "allows: the results would not be the LLM's. The first failure (slot 0, step 0): boom. Fix: check --llm "
        "base_url=http://llm.example.com/v1 (--llm base_url=...) and my-llm.host; lower --llm max_concurrency=... "
        "or the backend's settings (--llm KEY=VALUE). To accept fallbacks, raise --max-fallback-share (1.0 accepts "
        "every fallback; the report's LLM use line shows the share)")
