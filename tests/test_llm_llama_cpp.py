"""The embedded SmolLM2-135M-Instruct (GGUF), for real: served by ``python -m
llama_cpp.server`` and driven through the openai backend, and run in process by the
llama_cpp backend. Needs the ``llm`` extra; skipped only when llama-cpp-python is absent."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Literal

import pytest
from pydantic import BaseModel

pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')

from recoworld.llm import BackendCallError, ChatRequest, default_gguf_path, make_chat_model

SECRET = "sk-recoworld-test-0123456789-DO-NOT-LEAK"
SERVER_START_TIMEOUT_S = 120


class Decision(BaseModel):
    action: Literal["click", "skip"]
    reason: str


def prompts(n: int) -> list[ChatRequest]:
    titles = ["Heat (1995)", "Toy Story (1995)", "Fargo (1996)"]
    return [
        ChatRequest(
            [{"role": "system", "content": "You like thrillers."},
             {"role": "user", "content": f"Click or skip '{titles[i % 3]}'?"}],
            schema=Decision, max_tokens=40,
        )
        for i in range(n)
    ]


# A short chat in a child process: a llama.cpp built for instructions this CPU cannot run dies
# with SIGILL, which would otherwise take the whole pytest process down with it. The prompt is
# long enough for the batched matrix kernels (where AMX or AVX-512 code lives) to run.
PROBE = (
    "import sys, llama_cpp; llm = llama_cpp.Llama(sys.argv[1], n_ctx=256, verbose=False); "
    "llm.create_chat_completion([{'role': 'user', 'content': 'Say hello to the probe. ' * 8}], max_tokens=2)"
)


@pytest.fixture(scope="module")
def gguf():
    path = default_gguf_path()
    probe = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=120,
                           check=False)
    if probe.returncode != 0:
        hint = ""
        if probe.returncode == -signal.SIGILL:
            hint = (" (SIGILL: llama-cpp-python was compiled for CPU instructions this machine cannot run, e.g. AMX "
                    "inside a VM; rebuild it with CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON "
                    "-DGGML_F16C=ON\" pip install --force-reinstall --no-cache-dir llama-cpp-python)")
        pytest.fail(f"llama.cpp cannot generate on this machine: exit code {probe.returncode}{hint}\n"
                    f"{probe.stderr[-2000:]}")
    return path


@pytest.fixture(scope="module")
def llama_server(gguf, tmp_path_factory):
    """A llama_cpp.server on a free local port; yields its base URL, killed at teardown."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready in {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_openai_backend_against_llama_server_gives_schema_valid_replies(llama_server, tmp_path, caplog):
    llm = make_chat_model(backend="openai", model="smollm2", base_url=llama_server, api_key=SECRET,
                          structured_mode="json_object_schema", cache_dir=str(tmp_path / "cache"), max_concurrency=2)
    with caplog.at_level(logging.DEBUG):
        replies = llm.chat_many(prompts(2))
    assert all(isinstance(r.parsed, Decision) for r in replies)
    assert all(r.parsed.action in ("click", "skip") for r in replies)
    m = llm.metrics()
    assert m["llm_requests"] == 2 and m["llm_replies"] == 2 and m["llm_failures"] == 0
    assert m["llm_calls"] == 2 + m["llm_repairs"] and m["llm_cache_hits"] == 0
    assert m["llm_prompt_tokens"] > 2 * 20 and m["llm_completion_tokens"] >= 2 * 5
    assert m["llm_latency_s_total"] > 0

    again = llm.chat_many(prompts(2))  # a re-run is served from the cache
    assert [r.parsed for r in again] == [r.parsed for r in replies] and all(r.cached for r in again)
    assert llm.metrics()["llm_calls"] == m["llm_calls"]
    llm.close()

    # the key reached the server, and nowhere else
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir())
    for text in (repr(llm), json.dumps(llm.metrics()), caplog.text):
        assert SECRET not in text
    assert SECRET.encode() not in stored


def test_json_schema_mode_is_refused_by_llama_cpp_server_with_a_clear_error(llama_server):
    """llama_cpp.server knows only response_format type json_object (structured_mode
    "json_object_schema"). It reports the refusal as HTTP 500, so the call is retried as a
    server error before it fails; the failure names the problem."""
    llm = make_chat_model(backend="openai", model="smollm2", base_url=llama_server, structured_mode="json_schema",
                          max_retries=1, backoff_base_s=0.01)
    with pytest.raises(BackendCallError, match="(?s)HTTP 500.*Input should be 'text' or 'json_object'"):
        llm.chat(prompts(1)[0])
    m = llm.metrics()
    assert m["llm_retries"] == 1 and m["llm_backend_failures"] == 1 and m["llm_calls"] == 0
    llm.close()


def test_in_process_llama_cpp_backend_on_the_embedded_model(gguf):
    llm = make_chat_model(backend="llama_cpp", n_ctx=1024)
    assert llm.model_id == gguf.name
    (reply,) = llm.chat_many(prompts(1))
    assert isinstance(reply.parsed, Decision)
    m = llm.metrics()
    assert m["llm_replies"] == 1 and m["llm_prompt_tokens"] > 0 and m["llm_completion_tokens"] > 0

    sampled = ChatRequest("Name a thriller from the 1990s.", temperature=0.9, seed=11, max_tokens=8)
    assert llm.chat(sampled).text == llm.chat(sampled).text  # seeded sampling repeats without a cache
    llm.close()
