"""Review fixes (h159): a model folder or a PEFT adapter's base under ``~`` is loaded from its
expanded path (transformers reads "~/dir" as a malformed hub id); a DataFrame of pandas'
nullable numbers is a table of numbers, its NA a NaN named by row; a hand-edited schema
version such as "²" is named, not a raw int() error."""

from __future__ import annotations

import importlib.machinery
import json
import re
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld.apps.merge_setting import pooled_versions
from recoworld.catalog import Catalog
from recoworld.representations import attach_embeddings

# ------------------------------------------------------------------- paths under ~


class Loaded(Exception):
    """Raised where loading would go on: the record of what was loaded is complete."""


@pytest.fixture
def loads(monkeypatch, tmp_path):
    """What transformers is asked to load, in order, with HOME at ``tmp_path``: the tokenizer,
    the model and an adapter on it. The build ends when it reads the tokenizer's chat template,
    after every load."""
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HOME", str(tmp_path))
    asked = []

    class Tokenizer:
        @property
        def chat_template(self):
            raise Loaded

    class Model:
        def load_adapter(self, name, *args, **kwargs):
            asked.append(("adapter", name))

    def tokenizer(name, *args, **kwargs):
        asked.append(("tokenizer", name))
        return Tokenizer()

    def model(name, *args, **kwargs):
        asked.append(("model", name))
        return Model()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model)
    return asked


def folder(path, file, content):
    path.mkdir()
    (path / file).write_text(json.dumps(content))
    return path


def with_peft(monkeypatch, installed):
    """peft installed (a stand-in: nothing of it is called here) or not, whatever this machine has."""
    module = types.ModuleType("peft")
    module.__spec__ = importlib.machinery.ModuleSpec("peft", None)
    monkeypatch.setitem(sys.modules, "peft", module if installed else None)


def test_a_model_folder_under_home_is_loaded_from_its_expanded_path(tmp_path, loads):
    from recoworld.llm.transformers_backend import TransformersChatModel

    folder(tmp_path / "model", "config.json", {})
    with pytest.raises(Loaded):
        TransformersChatModel("~/model", device="cpu")
    assert loads == [("tokenizer", str(tmp_path / "model")), ("model", str(tmp_path / "model"))]


def test_an_adapter_whose_base_is_under_home_is_put_on_the_expanded_base(tmp_path, loads, monkeypatch):
    from recoworld.llm.transformers_backend import TransformersChatModel

    with_peft(monkeypatch, installed=True)
    (tmp_path / "base").mkdir()
    adapter = folder(tmp_path / "adapter", "adapter_config.json", {"base_model_name_or_path": "~/base"})
    for given in (str(adapter), "~/adapter"):
        loads.clear()
        with pytest.raises(Loaded):
            TransformersChatModel(given, device="cpu")
        # What transformers does for an adapter, with the base's path expanded: base, then adapter.
        assert loads == [("tokenizer", str(tmp_path / "base")), ("model", str(tmp_path / "base")),
                         ("adapter", str(adapter))]
    (adapter / "tokenizer.json").write_text("{}")  # saved with its tokenizer: read from the adapter
    loads.clear()
    with pytest.raises(Loaded):
        TransformersChatModel(str(adapter), device="cpu")
    assert loads == [("tokenizer", str(adapter)), ("model", str(tmp_path / "base")), ("adapter", str(adapter))]


def test_an_adapter_whose_base_is_written_in_full_is_left_to_transformers(tmp_path, loads, monkeypatch):
    from recoworld.llm.transformers_backend import TransformersChatModel

    with_peft(monkeypatch, installed=True)
    base = tmp_path / "base"
    base.mkdir()
    adapter = folder(tmp_path / "adapter", "adapter_config.json", {"base_model_name_or_path": str(base)})
    with pytest.raises(Loaded):
        TransformersChatModel(str(adapter), device="cpu")
    assert loads == [("tokenizer", str(base)), ("model", str(adapter))]  # transformers puts it on its base


def test_an_adapter_whose_base_is_under_home_needs_peft_before_its_base_is_loaded(tmp_path, loads, monkeypatch):
    from recoworld.llm.transformers_backend import TransformersChatModel

    with_peft(monkeypatch, installed=False)
    (tmp_path / "base").mkdir()
    adapter = folder(tmp_path / "adapter", "adapter_config.json", {"base_model_name_or_path": "~/base"})
    with pytest.raises(ImportError) as info:
        TransformersChatModel(str(adapter), device="cpu")
    assert str(info.value) == (f"model={str(adapter)!r} is a PEFT adapter, and transformers loads adapters with "
                               "peft only; pip install peft")
    assert loads == [("tokenizer", str(tmp_path / "base"))]


# ------------------------------------------------------------------- nullable DataFrames


@pytest.fixture
def catalog():
    return Catalog.synthetic(40, n_genres=4, feature_dim=8, seed=0)


def table():
    return np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)


def test_a_dataframe_of_nullable_numbers_is_stored_as_its_floats(catalog):
    frame = pd.DataFrame(table()).convert_dtypes()
    assert frame.dtypes.tolist() == [pd.Float32Dtype()] * 3  # pandas' nullable floats
    assert torch.equal(attach_embeddings(catalog, "img", frame), torch.as_tensor(table()))
    counts = pd.DataFrame({"plays": pd.array(range(40), dtype="Int64"),
                           "liked": pd.array([True, False] * 20, dtype="boolean")})
    assert torch.equal(attach_embeddings(catalog, "img", counts),
                       torch.stack([torch.arange(40.0), torch.tensor([1.0, 0.0] * 20)], dim=1))


def test_an_na_in_a_nullable_dataframe_is_named_by_its_row(catalog):
    frame = pd.DataFrame(table()).convert_dtypes()
    frame.iloc[7, 1] = pd.NA
    with pytest.raises(ValueError) as info:
        attach_embeddings(catalog, "img", frame)
    assert str(info.value) == "embeddings 'img' have the value nan in row 7; every value must be a finite float32"


@pytest.mark.parametrize("column", [pd.array(["a"] * 40, dtype="string"), pd.array([1j] * 40)],
                         ids=["text", "complex"])
def test_a_nullable_dataframe_with_text_or_complex_numbers_is_still_refused(catalog, column):
    frame = pd.DataFrame({"plays": pd.array(range(40), dtype="Int64"), "other": column})
    with pytest.raises(ValueError, match=re.escape("embeddings 'img' are not a table of numbers (")):
        attach_embeddings(catalog, "img", frame)


# ------------------------------------------------------------------- schema versions


def test_a_version_of_digits_that_int_does_not_read_is_named_like_any_unread_one():
    with pytest.raises(ValueError, match=re.escape("schema versions, version 2 (b) and version ² (a), ")):
        pooled_versions({"a": "²", "b": 2})


# ------------------------------------------------------------------- an adapter's model_id


class _Tokenizer:
    chat_template = "{{ messages }}"
    pad_token_id, eos_token = 0, "</s>"


class _Model:
    """A loaded model as transformers gives it for an adapter: its name_or_path is the base's."""

    def __init__(self, name_or_path, adapter=False):
        self.name_or_path = name_or_path
        self.peft_config = {"default": object()} if adapter else {}

    def load_adapter(self, name, *args, **kwargs):
        self.peft_config = {"default": object()}

    def to(self, device):
        return self

    def eval(self):
        return self


def test_an_adapter_is_named_in_cache_keys_by_itself_not_by_its_base(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from recoworld.llm.transformers_backend import TransformersChatModel

    base = folder(tmp_path / "base", "config.json", {})
    adapter = folder(tmp_path / "adapter", "adapter_config.json", {"base_model_name_or_path": str(base)})
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, *a, **k: _Tokenizer())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda name, *a, **k: _Model(str(base), adapter=name != str(base)))
    # Before: both were named by the base, so a shared cache served one's replies to the other.
    assert TransformersChatModel(str(adapter), device="cpu").model_id == str(adapter)
    assert TransformersChatModel(str(base), device="cpu").model_id == str(base)
    assert TransformersChatModel(str(adapter), device="cpu", model_id="mine").model_id == "mine"


def test_an_in_memory_model_with_an_adapter_needs_a_model_id_beside_a_cache(tmp_path):
    pytest.importorskip("transformers")
    from recoworld.llm.transformers_backend import TransformersChatModel

    with pytest.raises(ValueError, match="^" + re.escape(
            "this in-memory model carries a PEFT adapter, and its name_or_path '/models/base' names the base "
            "model; give model_id= to name the adapter in cache keys") + "$"):
        TransformersChatModel(_Model("/models/base", adapter=True), _Tokenizer(), device="cpu", cache=tmp_path)
    named = TransformersChatModel(_Model("/models/base", adapter=True), _Tokenizer(), device="cpu",
                                  cache=tmp_path, model_id="base+lora")
    assert named.model_id == "base+lora"
    assert TransformersChatModel(_Model("/models/base"), _Tokenizer(), device="cpu",
                                 cache=tmp_path).model_id == "/models/base"  # no adapter: as before
