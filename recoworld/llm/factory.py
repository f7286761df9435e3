"""Build a :class:`~recoworld.llm.base.ChatModel` from a config: a flat :class:`LLMConfig`
(a Hydra structured config, so a typo in an override is an error) or a plain dict.

    make_chat_model(backend="openai", model="gpt-4o-mini", cache_dir="runs/llm_cache")
    make_chat_model({"backend": "llama_cpp"})                 # embedded SmolLM2-135M
    make_chat_model(LLMConfig(backend="transformers", model="HuggingFaceTB/SmolLM2-135M-Instruct"))

Put keys in the environment (``RECOWORLD_LLM_API_KEY``/``OPENAI_API_KEY``, or the variable
named by ``api_key_env``), not in ``api_key``: a config is saved with each run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, check_fields, check_number
from recoworld.llm.accounting import Budget, Pricing
from recoworld.llm.base import ChatModel
from recoworld.llm.retry import RetryPolicy

BACKENDS = ("openai", "llama_cpp", "transformers")


@dataclass
class LLMConfig:
    """Every setting of every backend, flat. ``None`` means the backend's default.

    Which model (meaning per backend):
        backend: ``"openai"`` (any OpenAI-compatible endpoint), ``"llama_cpp"`` (a GGUF in
            process), or ``"transformers"``.
        model: openai — the served model name (required); llama_cpp — a ``.gguf`` path
            (default the embedded SmolLM2-135M-Instruct); transformers — a hub id or
            directory (required).
        model_id: the name in cache keys and metrics (default derived from ``model``).

    openai only: ``base_url`` (a URL, or several servers of the model as a list or
    comma-separated, see :mod:`recoworld.llm.server_pool`), ``api_key`` (prefer the environment), ``api_key_env``,
    ``structured_mode`` (also llama_cpp; openai's default ``"auto"`` finds out what the
    server supports), ``json_schema_strict``, ``max_tokens_param``.
    llama_cpp only: ``n_ctx``, ``n_threads``, ``n_gpu_layers``.
    transformers only: ``device`` (default CUDA when present), ``dtype``, ``batch_size``.

    Shared: ``cache_dir`` (``None``: no cache), ``max_concurrency`` (openai: 64 per server,
    see :mod:`recoworld.llm.openai_backend`; llama_cpp: 1; transformers: 8), ``timeout_s``,
    ``max_retries``, ``backoff_base_s``, ``backoff_max_s``, ``max_repairs``,
    ``repair_temperature``, ``repair_shows_reply`` (see :class:`~recoworld.llm.base.ChatModel`;
    ``None``: the backend's default), the budget
    (``max_total_tokens``, ``max_cost_usd``, ``max_calls``) and prices per million tokens.
    """

    backend: str = "llama_cpp"
    model: str | None = None
    model_id: str | None = None
    # openai
    # Any, not str | list[str]: OmegaConf's structured configs refuse a union with a list.
    base_url: Any = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    structured_mode: str | None = None
    json_schema_strict: bool = False
    max_tokens_param: str = "max_tokens"
    # llama_cpp
    n_ctx: int = 4096  # a repair turn (prompt, invalid reply, error) outgrows 2048
    n_threads: int | None = None
    n_gpu_layers: int = 0
    # transformers
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 8
    # shared
    cache_dir: str | None = None
    max_concurrency: int | None = None
    timeout_s: float | None = None
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_repairs: int = 2
    repair_temperature: float = 0.7
    repair_shows_reply: bool | None = None
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None
    max_calls: int | None = None
    prompt_usd_per_1m: float = 0.0
    completion_usd_per_1m: float = 0.0

    #: Checked when the config is built, so that ``llm.max_retries=-1`` fails naming itself
    #: rather than as a failed call (``n_ctx=0``: llama.cpp takes the model's own context).
    RANGES = {"max_retries": NON_NEGATIVE, "backoff_base_s": NON_NEGATIVE, "backoff_max_s": NON_NEGATIVE,
              "max_repairs": NON_NEGATIVE, "repair_temperature": NON_NEGATIVE, "n_ctx": NON_NEGATIVE,
              "batch_size": AT_LEAST_ONE, "prompt_usd_per_1m": NON_NEGATIVE, "completion_usd_per_1m": NON_NEGATIVE}
    #: The same for the settings that may be ``None`` (no limit, or the backend's default).
    OPTIONAL_RANGES = {"timeout_s": POSITIVE, "max_concurrency": AT_LEAST_ONE, "n_threads": AT_LEAST_ONE}

    def __post_init__(self):
        check_fields(self, owner="llm")
        for name, within in self.OPTIONAL_RANGES.items():
            value = getattr(self, name)
            if value is not None:
                check_number("llm", name, value, within, integer=name != "timeout_s")

    def to_dict(self) -> dict[str, Any]:
        """The settings without ``api_key`` — what may be written to a run directory."""
        d = asdict(self)
        d.pop("api_key")
        return d


_BACKEND_FIELDS = {
    "openai": {"base_url", "api_key", "api_key_env", "structured_mode", "json_schema_strict", "max_tokens_param"},
    "llama_cpp": {"structured_mode", "n_ctx", "n_threads", "n_gpu_layers"},
    "transformers": {"device", "dtype", "batch_size"},
}


def make_chat_model(config: LLMConfig | dict | None = None, /, **overrides) -> ChatModel:
    """A chat model built from ``config`` (an :class:`LLMConfig`, a mapping such as a Hydra
    ``DictConfig``, or nothing) updated with ``overrides``."""
    if config is None:
        values = {}
    elif isinstance(config, LLMConfig):
        values = asdict(config)
    else:
        values = dict(config)
    values.update(overrides)
    values.pop("_target_", None)
    known = {f.name for f in fields(LLMConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"unknown LLM setting(s) {unknown}; valid settings: {sorted(known)}")
    cfg = LLMConfig(**values)
    if cfg.backend not in BACKENDS:
        raise ValueError(f"backend={cfg.backend!r}; choose one of {BACKENDS}")
    defaults = LLMConfig()
    other = set().union(*(_BACKEND_FIELDS[b] for b in BACKENDS if b != cfg.backend)) - _BACKEND_FIELDS[cfg.backend]
    misplaced = sorted(n for n in other if getattr(cfg, n) != getattr(defaults, n))
    if misplaced:
        raise ValueError(f"{misplaced} do not apply to the {cfg.backend} backend; remove them or change backend")

    shared: dict[str, Any] = {
        "model_id": cfg.model_id,
        "cache": cfg.cache_dir,
        "budget": Budget(cfg.max_total_tokens, cfg.max_cost_usd, cfg.max_calls),
        "pricing": Pricing(cfg.prompt_usd_per_1m, cfg.completion_usd_per_1m),
        "retry": RetryPolicy(cfg.max_retries, cfg.backoff_base_s, cfg.backoff_max_s),
        "max_repairs": cfg.max_repairs,
        "repair_temperature": cfg.repair_temperature,
    }
    for name in ("max_concurrency", "timeout_s", "repair_shows_reply"):
        if getattr(cfg, name) is not None:
            shared[name] = getattr(cfg, name)

    if cfg.backend == "openai":
        from recoworld.llm.openai_backend import OpenAIChatModel

        if not cfg.model:
            raise ValueError("the openai backend needs model=, the model name the server knows")
        return OpenAIChatModel(
            cfg.model, base_url=cfg.base_url, api_key=cfg.api_key, api_key_env=cfg.api_key_env,
            structured_mode=cfg.structured_mode or "auto", json_schema_strict=cfg.json_schema_strict,
            max_tokens_param=cfg.max_tokens_param, **shared,
        )
    if cfg.backend == "llama_cpp":
        from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

        return LlamaCppChatModel(
            cfg.model, n_ctx=cfg.n_ctx, n_threads=cfg.n_threads, n_gpu_layers=cfg.n_gpu_layers,
            structured_mode=cfg.structured_mode or "json_schema", **shared,
        )
    from recoworld.llm.transformers_backend import TransformersChatModel

    if not cfg.model:
        raise ValueError("the transformers backend needs model=, a hub id or a local directory")
    return TransformersChatModel(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size, **shared)
