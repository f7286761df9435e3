"""GGUF models run in-process by ``llama-cpp-python`` — the default model is the embedded
SmolLM2-135M-Instruct (:func:`~recoworld.llm.embedded.default_gguf_path`).

With ``structured_mode="json_schema"`` a request's schema is compiled by llama.cpp into a
grammar (``response_format={"type": "json_object", "schema": ...}``), so every sampled token
keeps the reply inside the schema; a reply cut short by ``max_tokens`` can still be invalid
and goes through the usual repair turns.

A generation whose caller stopped waiting (``timeout_s``, a cancelled task) stops before its
next token or within its prompt's evaluation, and a timeout is not retried
(:mod:`recoworld.llm.in_process`).
"""

from __future__ import annotations

import weakref
from pathlib import Path

from recoworld.llm.embedded import INSTALL_HINT, default_gguf_path
from recoworld.llm.in_process import GenerationAbandoned, InProcessChatModel
from recoworld.llm.types import BackendCall, Completion

STRUCTURED_MODES = ("json_schema", "none")
#: How to shorten an LLM user's prompt, in ``recoworld run``'s keys: the second fix of a prompt
#: that outgrows the context window (``recoworld fidelity``, which has no such keys, words its own).
SHORTEN_PROMPT = "shorten what enters the prompt (long item titles; LLM users' memory: simulator.config.memory.*)"


def _stoppable_llama(llama_cpp):
    """``llama_cpp.Llama`` whose generation stops once ``should_stop()`` is true: between
    tokens, and inside the prompt's evaluation (a long prompt takes seconds).

    ``generate`` evaluates the prompt, then each sampled token, through ``eval``, checked
    before each; ggml asks the context's abort callback between the operations of an
    evaluation (some 600 per token for SmolLM2), which then fails ("llama_decode returned
    2"). The callback is registered for the prompt's evaluation only: a token's takes
    milliseconds and is checked before it, and the callback's ~600 calls, each taking the GIL
    from ggml's thread to run Python, would slow every token. (The chat handlers drop a caller's ``stopping_criteria``,
    and an exception cannot leave a logits processor, which runs in a C callback.) The
    model's state stays whole: ``n_tokens`` counts only what was evaluated, and the next
    ``eval`` drops anything past it from the KV cache. The callback goes through
    ``Llama._ctx``, a private attribute: where a release lacks it, a generation stops
    between tokens only.
    """
    import ctypes

    class StoppableLlama(llama_cpp.Llama):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._abort_callback = None
            context = getattr(getattr(self, "_ctx", None), "ctx", None)
            if context is not None and hasattr(llama_cpp, "llama_set_abort_callback"):
                # Through a weak reference: the callback, kept alive here, must not keep its Llama
                # alive (a reference cycle frees the weights and context only when the garbage collector runs).
                self._abort_callback = llama_cpp.ggml_abort_callback(_abort_check(weakref.ref(self)))  # kept alive
                self._no_abort_callback = ctypes.cast(None, llama_cpp.ggml_abort_callback)

        def should_stop(self) -> bool:
            return False

        def eval(self, tokens):
            if self.should_stop():
                raise GenerationAbandoned("stopped: its caller stopped waiting")
            watched = len(tokens) > 1 and self._abort_callback is not None  # a prompt, not a token
            if watched:
                llama_cpp.llama_set_abort_callback(self._ctx.ctx, self._abort_callback, None)
            try:
                return super().eval(tokens)
            except RuntimeError:
                if self.should_stop():  # the abort callback stopped it
                    raise GenerationAbandoned("stopped: its caller stopped waiting") from None
                raise
            finally:
                if watched:
                    llama_cpp.llama_set_abort_callback(self._ctx.ctx, self._no_abort_callback, None)

    return StoppableLlama


def _abort_check(llama_ref):
    """ggml's abort callback: whether the Llama behind ``llama_ref`` should stop (no, once it is gone)."""

    def should_abort(_data) -> bool:
        llama = llama_ref()
        return llama is not None and bool(llama.should_stop())

    return should_abort


def _unless_gone(method_ref: weakref.WeakMethod):
    """``method_ref``'s method, returning False once its object is gone: what a model hands its
    own Llama, which must not hold the model (the cycle above)."""

    def check() -> bool:
        method = method_ref()
        return method is not None and method()

    return check


class LlamaCppChatModel(InProcessChatModel):
    """A GGUF chat model in this process.

    Arguments:
        model_path: the ``.gguf`` file; default the embedded SmolLM2-135M-Instruct.
        n_ctx: context window in tokens.
        n_threads: CPU threads; default llama.cpp's choice.
        n_gpu_layers: layers offloaded to a GPU build of llama.cpp (``-1`` for all).
        chat_format: a llama-cpp-python chat format name; default the GGUF's own template.
        structured_mode: ``"json_schema"`` (grammar-constrained) or ``"none"``.
        reuse_prefix: keep llama.cpp's reuse of the previous call's evaluated prompt prefix
            (faster with a shared system prompt). Off by default: a reused prefix is evaluated
            in a different batch shape, which shifts logits slightly, so a seeded sampled reply
            would depend on which call came before it.
        model_id: name in cache keys and metrics; default the file name. Cache keys also
            hold the file's size and the name in its metadata (``general.name``), so that
            two models saved under one file name do not share replies.
        **kwargs: the shared :class:`~recoworld.llm.base.ChatModel` arguments;
            ``max_concurrency`` defaults to 1 (one llama context, one generation at a time),
            ``repair_shows_reply`` to False (SmolLM2-135M shown its bad reply repeats it).
    """

    backend = "llama_cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        chat_format: str | None = None,
        structured_mode: str = "json_schema",
        reuse_prefix: bool = False,
        model_id: str | None = None,
        **kwargs,
    ):
        try:
            import llama_cpp
        except ImportError as e:
            raise ImportError(f"the llama_cpp backend needs llama-cpp-python: {INSTALL_HINT}") from e
        if structured_mode not in STRUCTURED_MODES:
            raise ValueError(f"structured_mode={structured_mode!r}; choose one of {STRUCTURED_MODES}")
        path = Path(model_path) if model_path is not None else default_gguf_path()
        if not path.is_file():
            raise FileNotFoundError(f"model_path={str(path)!r} is not a file; give the path of a .gguf model")
        with path.open("rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":  # llama.cpp would say only "Failed to load model from file"
            raise ValueError(f"model_path={str(path)!r} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); "
                             "give a .gguf model (convert others with llama.cpp's convert_hf_to_gguf.py)")
        kwargs.setdefault("max_concurrency", 1)
        kwargs.setdefault("repair_shows_reply", False)
        super().__init__(model_id=model_id or path.name, **kwargs)
        self.model_path = path
        self.structured_mode = structured_mode
        self.n_ctx = n_ctx
        self.reuse_prefix = reuse_prefix
        self.chat_format = chat_format
        self._llama = _stoppable_llama(llama_cpp)(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
            chat_format=chat_format, verbose=False,
        )
        self._llama.should_stop = _unless_gone(weakref.WeakMethod(self._abandoned))
        # Free the model when this object goes, or at the latest at exit, while llama_cpp's
        # module is whole: Llama.__del__ at interpreter shutdown finds its functions gone to
        # None and prints a traceback (a model never closed, e.g. LLMUsers' left to exit).
        self._free_llama = weakref.finalize(self, self._llama.close)
        #: What tells this GGUF from another of the same file name, for cache keys.
        self.gguf_fingerprint = {"bytes": path.stat().st_size,
                                 "name": getattr(self._llama, "metadata", {}).get("general.name")}

    def _failure_hint(self, exc: BaseException) -> str:
        # llama-cpp-python says "Requested tokens (N) exceed context window of M": the prompt,
        # not the model, is at fault, and the generic hint would send the user looking elsewhere.
        if "context window" in str(exc):
            return (f"the prompt and its reply do not fit the context window: raise llm.n_ctx (now {self.n_ctx}, "
                    f"at most the model's own), or {SHORTEN_PROMPT}")
        return super()._failure_hint(exc)

    def cache_identity(self) -> dict:
        # The chat format changes the prompt the model reads, and so its replies.
        return {"backend": self.backend, "model": self.model_id, "gguf": self.gguf_fingerprint,
                "chat_format": self.chat_format, "structured_mode": self.structured_mode}

    def _generate_locked(self, calls: list[BackendCall]) -> list[Completion]:
        (call,) = calls
        return [self._generate_one(call)]

    def _generate_one(self, call: BackendCall) -> Completion:
        s = call.sampling()
        args = {"messages": list(call.messages), "temperature": s["temperature"], "max_tokens": s["max_tokens"]}
        for name in ("top_p", "seed", "stop"):
            if s[name] is not None:
                args[name] = s[name]
        if call.json_schema is not None and self.structured_mode == "json_schema":
            args["response_format"] = {"type": "json_object", "schema": call.json_schema}
        if self._llama is None:  # the caller holds the model's lock
            raise RuntimeError(f"{self!r} is closed; build a new LlamaCppChatModel to generate again")
        if not self.reuse_prefix:
            self._llama.reset()
        response = self._llama.create_chat_completion(**args)
        choice, usage = response["choices"][0], response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            finish_reason=choice.get("finish_reason"),
        )

    def close(self) -> None:
        """Free the model's weights and context now (not when the garbage collector gets to
        them), then the shared resources; idempotent. The accounting stays readable."""
        super().close()
        with self._lock:
            llama, self._llama = self._llama, None
        if llama is not None:
            self._free_llama()  # llama.close(), once

    def __repr__(self) -> str:
        return f"LlamaCppChatModel(model_id={self.model_id!r}, n_ctx={self.n_ctx}, structured_mode={self.structured_mode!r})"
