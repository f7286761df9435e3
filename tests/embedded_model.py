"""The embedded SmolLM2-135M-Instruct GGUF for tests that drive a real model: its path once
llama.cpp is known to run here, and a ``llama_cpp.server`` serving it on 127.0.0.1.

Tests import these (after ``pytest.importorskip("llama_cpp")``); a llama.cpp that cannot
run on this CPU fails them with the reason and the fix, rather than skipping them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from recoworld.llm import default_gguf_path

# A short generation in a child process: a llama.cpp built for instructions this CPU lacks
# dies with SIGILL, which would otherwise take pytest down with it. The prompt is long
# enough for the batched matrix kernels (where AMX or AVX-512 code lives) to run.
PROBE = ("import sys, llama_cpp; llm = llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=1, verbose=False); "
         "llm.create_chat_completion([{'role': 'user', 'content': 'Say hello to the probe. ' * 8}], max_tokens=2)")
REBUILD = ('CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
           "pip install --force-reinstall --no-cache-dir llama-cpp-python")


@functools.cache
def embedded_gguf():
    """The embedded model's path, after checking that llama.cpp can run it here (once per
    test process: the probe loads the model in a child, and the answer cannot change; a
    failed probe raises, so it is not kept and the next module probes again)."""
    path = default_gguf_path()
    probe = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=300,
                           check=False)
    if probe.returncode != 0:
        hint = (f" (SIGILL: llama-cpp-python was built for CPU instructions this machine cannot run, e.g. AMX "
                f"inside a VM; rebuild it with {REBUILD})") if probe.returncode == -signal.SIGILL else ""
        pytest.fail(f"llama.cpp cannot generate on this machine: exit code {probe.returncode}{hint}\n"
                    f"{probe.stderr[-2000:]}")
    return path


@contextlib.contextmanager
def llama_server(gguf, log_path, start_timeout_s=180):
    """``python -m llama_cpp.server`` on a free local port, one thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Passive OpenMP waiting: spinning threads would starve each other on a shared CPU.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout_s
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
                pytest.fail(f"llama_cpp.server not ready in {start_timeout_s}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
