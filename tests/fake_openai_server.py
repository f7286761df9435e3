"""A fake OpenAI-compatible server on 127.0.0.1 for fault tests: a real HTTP server in a
thread that answers ``POST .../chat/completions`` from a script.

Each script entry is an :class:`Answer` (status, content type, body, optional delay, or a
dropped connection), consumed one per request; the last entry repeats. A callable entry
receives the request's JSON body and returns an :class:`Answer`, so that a server can
refuse ``response_format`` types the way real servers do. Every request body is kept in
``server.requests``.

    with FakeOpenAIServer([Answer.status(500, "boom"), Answer.chat('{"a": 1}')]) as server:
        llm = OpenAIChatModel("m", base_url=server.base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the fake server."""

    status: int = 200
    content_type: str = "application/json"
    body: str = ""
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False  # close the connection without answering

    @staticmethod
    def chat(text: str, **kwargs) -> Answer:
        """A valid chat completion whose message is ``text``."""
        body = {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        return Answer(body=json.dumps(body), **kwargs)

    @staticmethod
    def error(status: int, message: str, **kwargs) -> Answer:
        """An OpenAI-style error body with ``status``."""
        return Answer(status=status, body=json.dumps({"error": {"message": message, "type": "server_error"}}),
                      **kwargs)


Script = list[Answer | Callable[[dict], Answer]]


class FakeSleep:
    """Records backoff delays instead of sleeping (a ChatModel's ``sleep=``), so that tests
    of retries take no time."""

    def __init__(self):
        self.delays = []

    async def __call__(self, seconds):
        self.delays.append(seconds)


class FakeOpenAIServer:
    """The server (see the module docstring); a context manager that starts and stops it."""

    def __init__(self, script: Script):
        self.script = list(script)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: dict) -> Answer:
        with self._lock:
            self.requests.append(body)
            entry = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return entry(body) if callable(entry) else entry

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server calls it by this name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                answer = server._next(body)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                payload = answer.body.encode()
                self.send_response(answer.status)
                self.send_header("content-type", answer.content_type)
                self.send_header("content-length", str(len(payload)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                    pass

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler


def refuse_response_format(refused: dict[str, tuple[int, str]], reply: str) -> Callable[[dict], Answer]:
    """A script entry for a server that refuses some ``response_format`` types: ``refused``
    maps a type (``"json_schema"``, ``"json_object"``) to the HTTP status and message it
    answers; other requests get a chat completion of ``reply``."""

    def answer(body: dict) -> Answer:
        kind = (body.get("response_format") or {}).get("type")
        if kind in refused:
            status, message = refused[kind]
            return Answer.error(status, message)
        return Answer.chat(reply)

    return answer
