"""Local Hugging Face ``transformers`` causal LMs, with batched generation.

Requests of a round that share sampling parameters are padded on the left and generated
together in batches of ``batch_size`` — one forward pass per token for the whole batch, which
is where a GPU earns its keep. There is no constrained decoding here: structured replies rely
on the schema in the prompt and on repair turns.

A generation whose caller stopped waiting (``timeout_s``, a cancelled task) stops after its
current token, and a timeout is not retried (:mod:`recoworld.llm.in_process`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from recoworld.llm.in_process import GenerationAbandoned, InProcessChatModel
from recoworld.llm.types import BackendCall, Completion


def _check_local_model(name: str) -> None:
    """``FileNotFoundError`` naming ``name`` when it is a path (an existing directory, or a name
    that starts with ``/``, ``.`` or ``~``, which no hub id does) without a model in it:
    ``transformers`` would otherwise report it as a malformed hub id or a missing tokenizer.
    A PEFT adapter's directory (``adapter_config.json``, no ``config.json``) holds one:
    ``transformers`` loads the adapter on its base model when ``peft`` is installed (the
    tokenizer is read as :func:`_tokenizer_source` says)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not any((path / file).is_file() for file in ("config.json", "adapter_config.json")):
            raise FileNotFoundError(f"model={name!r} is a directory without config.json (a model's) or "
                                    "adapter_config.json (a PEFT adapter's); give the directory that save_pretrained() "
                                    "wrote, or a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct")
    elif name.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"model={name!r} is not a directory; give a local model directory or a hub id such as "
                                "HuggingFaceTB/SmolLM2-135M-Instruct")


#: The files of a tokenizer that ``save_pretrained()`` wrote: a folder with neither holds none.
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def _tokenizer_source(name: str) -> str:
    """Where the tokenizer of model ``name`` is read: ``name``, or, for a PEFT adapter's
    directory without a tokenizer (adapters are often saved without one), the base model
    that its ``adapter_config.json`` names (``base_model_name_or_path``), on which
    ``transformers`` loads the adapter: a local directory or a hub id. ``transformers`` would
    read the adapter's directory, and fail there on tokenizer files it does not have.

    Raises:
        FileNotFoundError: ``adapter_config.json`` cannot be read, names no base model, or
            names a path (``/``, ``.``, ``~``) that is not a directory here (it was trained on
            another machine, say); the message names it and the fix.
    """
    adapter = Path(name).expanduser()
    config = adapter / "adapter_config.json"
    if not config.is_file() or any((adapter / file).is_file() for file in TOKENIZER_FILES):
        return name
    without = f"model={name!r} is a PEFT adapter without a tokenizer ({' or '.join(TOKENIZER_FILES)})"
    fix = (f"save the tokenizer beside the adapter (tokenizer.save_pretrained({name!r})), or, in Python, give it: "
           "TransformersChatModel(model, tokenizer)")
    try:
        base = _adapter_base(adapter)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"{without}, and {config}, which names the base model to read it from, cannot be "
                                f"read ({error}); save the adapter again (model.save_pretrained), or {fix}") from None
    if not isinstance(base, str) or not base.strip():
        raise FileNotFoundError(f"{without}, and {config} names no base model to read it from "
                                f"(base_model_name_or_path={base!r}); {fix}")
    local = Path(base).expanduser()
    if not local.is_dir() and base.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"{without}, so it is read from the base model that {config} names, "
                                f"base_model_name_or_path={base!r}, which is not a directory here; set it to the base "
                                f"model's directory or hub id (e.g. HuggingFaceTB/SmolLM2-135M-Instruct), or {fix}")
    return str(local) if local.is_dir() else base  # transformers reads "~/base" as a malformed hub id


def _adapter_base(adapter: Path):
    """What the ``adapter_config.json`` of PEFT adapter folder ``adapter`` gives as
    ``base_model_name_or_path`` (``None`` when nothing). Raises ``OSError`` or ``ValueError``
    when the file cannot be read as JSON."""
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    return adapter_config.get("base_model_name_or_path") if isinstance(adapter_config, dict) else None


def _load_model(transformers, name: str, options: dict):
    """The causal LM at ``name``, loaded by ``AutoModelForCausalLM.from_pretrained(name,
    **options)``, except a PEFT adapter whose ``adapter_config.json`` names its base under
    ``~``: ``transformers`` would read that base as written, a malformed hub id, so it is
    loaded here as ``transformers`` loads any adapter (the base model, then the adapter on
    it), from the expanded path.

    Raises:
        ImportError: that adapter, without ``peft`` (checked before the base is loaded).
    """
    adapter = Path(name)
    base = None
    if (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").is_file():
        try:
            base = _adapter_base(adapter)
        except (OSError, ValueError):
            pass  # transformers names the damaged file
    if not (isinstance(base, str) and base.startswith("~")):
        return transformers.AutoModelForCausalLM.from_pretrained(name, **options)
    if importlib.util.find_spec("peft") is None:
        raise ImportError(f"model={name!r} is a PEFT adapter, and transformers loads adapters with peft only; "
                          "pip install peft")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(Path(base).expanduser()), **options)
    model.load_adapter(name)
    return model


class TransformersChatModel(InProcessChatModel):
    """A chat model run in-process by ``transformers``.

    Arguments:
        model: a hub id or local directory, or a loaded ``PreTrainedModel``.
        tokenizer: the tokenizer, required with a loaded model; it must have a chat template.
        device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``...; default CUDA when present, else CPU.
        dtype: weights dtype when loading by name (``"bfloat16"``, ``"auto"``...). The
            weights' dtype enters cache keys: it changes replies, greedy ones included.
        batch_size: most sequences generated together.
        model_id: name in cache keys and metrics; default the name given (hub id, or local
            directory with ``~`` expanded), else the loaded model's ``name_or_path``
            (required for a model built in memory, or carrying a PEFT adapter, when a cache
            is used: an adapter's ``name_or_path`` is its base's).
        **kwargs: the shared :class:`~recoworld.llm.base.ChatModel` arguments;
            ``max_concurrency`` defaults to 1 (one batch on the device at a time).

    Seeded sampling (``ChatRequest.seed``) seeds torch for the batch in a forked RNG, so it
    neither reads nor disturbs the global torch generator; the same list of requests gives
    the same texts. Greedy decoding (``temperature=0``) needs no seed.
    """

    backend = "transformers"

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        model_id: str | None = None,
        **kwargs,
    ):
        import torch
        import transformers

        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; it must be >= 1")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model, str):
            _check_local_model(model)
            local = Path(model).expanduser()
            name = str(local) if local.is_dir() else model  # transformers reads "~/dir" as a malformed hub id
            tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(_tokenizer_source(name))
            dtype_kw = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
            model = _load_model(transformers, name, {dtype_kw: dtype} if dtype else {})
            # The name given, not the loaded model's name_or_path: an adapter's is its base's,
            # and a shared cache would serve the base's replies to the adapter and back.
            model_id = name if model_id is None else model_id
        elif tokenizer is None:
            raise ValueError("a loaded model needs its tokenizer: TransformersChatModel(model, tokenizer)")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer of {getattr(model, 'name_or_path', model)!r} has no chat template; "
                             "set tokenizer.chat_template to a Jinja template")
        if model_id is None and getattr(model, "peft_config", None) and kwargs.get("cache") is not None:
            raise ValueError(f"this in-memory model carries a PEFT adapter, and its name_or_path "
                             f"{getattr(model, 'name_or_path', '')!r} names the base model; give model_id= to "
                             "name the adapter in cache keys")
        model_id = model_id or getattr(model, "name_or_path", "") or ""
        if not model_id and kwargs.get("cache") is not None:
            raise ValueError("this in-memory model has no name_or_path; give model_id= to name it in cache keys")
        kwargs.setdefault("max_concurrency", 1)
        super().__init__(model_id=model_id or "in-memory", **kwargs)
        tokenizer.padding_side = "left"  # generation continues at the right edge of every row
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_batch_size = batch_size
        #: The dtype of the weights as loaded (``"torch.bfloat16"``...), for cache keys.
        self.weights_dtype = str(getattr(self.model, "dtype", None))

    def cache_identity(self) -> dict:
        return {**super().cache_identity(), "dtype": self.weights_dtype}

    def _generate_locked(self, calls: list[BackendCall]) -> list[Completion]:
        return self._generate_batch(calls)

    def _generate_batch(self, calls: list[BackendCall]) -> list[Completion]:
        import torch
        import transformers

        model = self.model  # the caller holds the model's lock
        if model is None:
            raise RuntimeError(f"{self!r} is closed; build a new TransformersChatModel to generate again")
        tok = self.tokenizer
        asked = [tok.apply_chat_template(list(c.messages), add_generation_prompt=True, tokenize=False) for c in calls]
        # One row per distinct prompt: rows of a seeded batch draw from one random stream, and
        # identical requests must get identical texts.
        prompts = list(dict.fromkeys(asked))
        # The chat template already holds the special tokens (BOS etc.).
        inputs = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        s = calls[0].sampling()
        options = {"max_new_tokens": s["max_tokens"], "pad_token_id": tok.pad_token_id}
        if s["temperature"] > 0:
            options.update(do_sample=True, temperature=s["temperature"], top_p=s["top_p"] or 1.0)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s["stop"]:
            options.update(stop_strings=s["stop"], tokenizer=tok)
        options["stopping_criteria"] = transformers.StoppingCriteriaList([_StopWhenAbandoned(self._abandoned)])
        with torch.inference_mode():
            if s["seed"] is None:
                output = model.generate(**inputs, **options)
            else:
                cuda = [self.device.index or 0] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=cuda):
                    torch.manual_seed(s["seed"])
                    output = model.generate(**inputs, **options)
        new_tokens = output[:, inputs["input_ids"].shape[1]:].tolist()
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        eos = _eos_ids(model, tok)
        completions = []
        for row, prompt_length in zip(new_tokens, prompt_lengths):
            n = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            text = tok.decode(row[:n], skip_special_tokens=True)
            finish = "stop" if n < len(row) or (row and row[-1] in eos) else "length"
            for stop in s["stop"] or ():
                if stop in text:  # OpenAI semantics: the stop string is not part of the reply
                    text, finish = text[: text.index(stop)], "stop"
            completions.append(Completion(text, int(prompt_length), n, finish))
        by_prompt = dict(zip(prompts, completions))
        return [by_prompt[prompt] for prompt in asked]

    def close(self) -> None:
        """Drop this model's reference to the network (freeing its memory, GPU included, unless
        the caller holds it too), then the shared resources; idempotent."""
        super().close()
        with self._lock:
            released, self.model = self.model, None
        if released is not None and self.device.type == "cuda":
            import torch

            del released
            torch.cuda.empty_cache()

    def __repr__(self) -> str:
        return f"TransformersChatModel(model_id={self.model_id!r}, device={str(self.device)!r}, batch_size={self.max_batch_size})"


class _StopWhenAbandoned:
    """A ``transformers`` stopping criterion that stops the generation, between tokens, once
    ``abandoned()`` is true (its caller stopped waiting); raising, not answering ``True``,
    so that a generation cut short is never taken for a reply."""

    def __init__(self, abandoned):
        self.abandoned = abandoned

    def __call__(self, input_ids, scores, **kwargs):
        if self.abandoned():
            raise GenerationAbandoned("stopped: its caller stopped waiting")
        import torch

        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
