"""Inputs named where they enter: a misspelt key of an LLM user's memory (or representation)
given as a mapping; a catalog's titles or genre names given as one string; a PEFT adapter
folder without a tokenizer, whose tokenizer is its base model's."""

from __future__ import annotations

import json
import re

import pytest
import torch

from recoworld import Catalog
from recoworld.simulators.hybrid_config import HybridUserConfig
from recoworld.simulators.llm_config import LLMUserConfig
from recoworld.simulators.memory import MemoryConfig

# ------------------------------------------------------------------- memory as a mapping


def test_a_misspelt_memory_key_is_named_with_the_fields():
    with pytest.raises(ValueError, match=re.escape(
            "LLMUserConfig.memory has 'max_interaction', which MemoryConfig has not (did you mean "
            "'max_interactions'?); its fields are max_interactions, max_sessions, max_reason_chars, remember_skips")):
        LLMUserConfig(memory={"max_interaction": 5})
    with pytest.raises(ValueError, match=re.escape("HybridUserConfig.memory has 'forget', which MemoryConfig has "
                                                   "not; ")):
        HybridUserConfig(memory={"forget": True})
    with pytest.raises(ValueError, match=re.escape("LLMUserConfig.representation has 'knd', which RepresentationConfig "
                                                   "has not (did you mean 'kind'?); its fields are kind, ")):
        LLMUserConfig(representation={"knd": "text"})


def test_a_memory_mapping_of_its_fields_is_the_config():
    from omegaconf import OmegaConf

    assert LLMUserConfig(memory={"max_sessions": 1}).memory == MemoryConfig(max_sessions=1)
    assert LLMUserConfig(memory=OmegaConf.create({"remember_skips": True})).memory == MemoryConfig(remember_skips=True)
    with pytest.raises(ValueError, match=re.escape("MemoryConfig.max_sessions=-1: must be an integer >= 0")):
        LLMUserConfig(memory={"max_sessions": -1})  # the values checked as before


# ------------------------------------------------------------------- a catalog's strings


def tables(n=3):
    return dict(features=torch.eye(n), genres=torch.ones(n, 1, dtype=torch.bool), genre_names=("Drama",),
                titles=[f"item {i}" for i in range(n)], popularity=torch.full((n,), 1 / n), quality=torch.zeros(n))


@pytest.mark.parametrize("titles, kind", [("abc", "string"), (b"abc", "bytes object")])
def test_titles_given_as_one_string_are_refused(titles, kind):
    refusal = f"titles={titles!r} is one {kind}; give a sequence of item titles, one per item (3 items), e.g. [f"
    with pytest.raises(ValueError, match=f"^{re.escape(refusal)}"):
        Catalog(**{**tables(), "titles": titles})


def test_genre_names_given_as_one_bytes_object_are_refused():
    with pytest.raises(ValueError, match=re.escape("genre_names=b'A' is one bytes object; give a sequence of genre "
                                                   "names, one per column of genres")):
        Catalog(**{**tables(), "genre_names": b"A"})


def test_the_refusal_of_one_string_keeps_its_words():
    expected = "titles='abc' is one string; give a sequence of item titles, one per item (3 items), e.g. " \
               "[f'item {i}' for i in range(3)]"
    with pytest.raises(ValueError) as info:
        Catalog(**{**tables(), "titles": "abc"})
    assert str(info.value) == expected
    assert Catalog(**tables()).titles == ["item 0", "item 1", "item 2"]


# ------------------------------------------------------------------- a PEFT adapter's tokenizer

transformers = pytest.importorskip("transformers")


class Loaded(Exception):
    """Raised where transformers would load a tokenizer: its argument is where from."""


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny model with its tokenizer saved as save_pretrained() writes them."""
    from test_llm_transformers import build_tokenizer

    tokenizer = build_tokenizer()
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("base")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def adapter(path, config):
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps(config))
    return path


def test_an_adapter_without_a_tokenizer_reads_its_base_models(tmp_path, base, monkeypatch):
    from recoworld.llm.transformers_backend import TransformersChatModel

    folder = adapter(tmp_path / "adapter", {"base_model_name_or_path": str(base), "peft_type": "LORA"})
    load_model = transformers.AutoModelForCausalLM.from_pretrained
    # What peft does for transformers: the adapter's folder loads its base model.
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda name, **kwargs: load_model(base if name == str(folder) else name, **kwargs))
    llm = TransformersChatModel(str(folder), device="cpu")
    assert llm.tokenizer.name_or_path == str(base)
    assert llm.tokenizer("a light comedy")["input_ids"] == \
        transformers.AutoTokenizer.from_pretrained(base)("a light comedy")["input_ids"]
    assert llm.chat("Would you click?", max_tokens=3).completion_tokens >= 1


def test_an_adapter_with_a_tokenizer_reads_its_own(tmp_path, monkeypatch):
    from recoworld.llm.transformers_backend import TransformersChatModel

    def load(name, *args, **kwargs):
        raise Loaded(name)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", load)
    folder = adapter(tmp_path / "adapter", {"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"})
    with pytest.raises(Loaded, match="^HuggingFaceTB/SmolLM2-135M$"):  # a hub id, as the model's base
        TransformersChatModel(str(folder), device="cpu")
    (folder / "tokenizer_config.json").write_text("{}")
    with pytest.raises(Loaded, match=f"^{re.escape(str(folder))}$"):
        TransformersChatModel(str(folder), device="cpu")


def test_an_adapter_whose_base_is_elsewhere_is_named_with_the_fix(tmp_path):
    from recoworld.llm.transformers_backend import TransformersChatModel

    folder = adapter(tmp_path / "adapter", {"base_model_name_or_path": "/home/trainer/models/base"})
    config = folder / "adapter_config.json"
    fix = (f"save the tokenizer beside the adapter (tokenizer.save_pretrained({str(folder)!r})), or, in Python, "
           "give it: TransformersChatModel(model, tokenizer)")
    with pytest.raises(FileNotFoundError) as info:
        TransformersChatModel(str(folder), device="cpu")
    assert str(info.value) == (
        f"model={str(folder)!r} is a PEFT adapter without a tokenizer (tokenizer_config.json or tokenizer.json), so it "
        f"is read from the base model that {config} names, base_model_name_or_path='/home/trainer/models/base', which "
        "is not a directory here; set it to the base model's directory or hub id (e.g. "
        f"HuggingFaceTB/SmolLM2-135M-Instruct), or {fix}")
    config.write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(FileNotFoundError) as info:
        TransformersChatModel(str(folder), device="cpu")
    assert str(info.value) == (
        f"model={str(folder)!r} is a PEFT adapter without a tokenizer (tokenizer_config.json or tokenizer.json), and "
        f"{config} names no base model to read it from (base_model_name_or_path=None); {fix}")


def test_an_adapter_whose_base_is_under_home_reads_the_expanded_path(tmp_path, monkeypatch):
    from recoworld.llm.transformers_backend import TransformersChatModel

    def load(name, *args, **kwargs):
        raise Loaded(name)

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "base").mkdir()
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", load)
    folder = adapter(tmp_path / "adapter", {"base_model_name_or_path": "~/base"})
    # transformers reads "~/base" as a malformed hub id: the path is given expanded
    with pytest.raises(Loaded, match=f"^{re.escape(str(tmp_path / 'base'))}$"):
        TransformersChatModel(str(folder), device="cpu")


def test_a_damaged_adapter_config_is_named_as_damaged(tmp_path):
    from recoworld.llm.transformers_backend import TransformersChatModel

    folder = adapter(tmp_path / "adapter", {})
    (folder / "adapter_config.json").write_text('{"base_model_name_or_path": ')
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"{folder / 'adapter_config.json'}, which names the base model to read it from, cannot be read (")):
        TransformersChatModel(str(folder), device="cpu")
