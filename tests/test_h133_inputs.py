"""Inputs named where they enter: a PEFT adapter folder is a transformers model path; a
request's seed fits llama.cpp's uint32; a catalog's genre names come in column order, not as
a set or a dict; a sweep folder's runs are listed whatever their names; the (0, 1] range is
one constant of recoworld.config_checks."""

import re

import pytest

from recoworld import Catalog
from recoworld.llm.types import ChatRequest

CATALOG = Catalog.synthetic(20, n_genres=2, seed=0)


# ------------------------------------------------------------------- transformers paths

class Loaded(Exception):
    """Raised where transformers would load the model: the path check let it through."""


def test_a_peft_adapter_folder_reaches_transformers(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from recoworld.llm import make_chat_model

    def load(name, *args, **kwargs):
        raise Loaded(name)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", load)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"}')
    (adapter / "tokenizer_config.json").write_text("{}")  # saved with its tokenizer (without: test_h144_inputs)
    with pytest.raises(Loaded, match=f"^{re.escape(str(adapter))}$"):
        make_chat_model(backend="transformers", model=str(adapter))


def test_a_folder_without_a_model_names_both_files(tmp_path):
    pytest.importorskip("transformers")
    from recoworld.llm import make_chat_model

    with pytest.raises(FileNotFoundError) as info:
        make_chat_model(backend="transformers", model=str(tmp_path))
    assert str(info.value) == (
        f"model={str(tmp_path)!r} is a directory without config.json (a model's) or adapter_config.json (a PEFT "
        "adapter's); give the directory that save_pretrained() wrote, or a hub id such as "
        "HuggingFaceTB/SmolLM2-135M-Instruct")


# ------------------------------------------------------------------------------- seeds

@pytest.mark.parametrize("seed", [2**32, 2**40])
def test_a_seed_beyond_llama_cpps_uint32_is_named(seed):
    with pytest.raises(ValueError) as info:
        ChatRequest("hi", seed=seed)
    assert str(info.value) == (f"seed={seed}: must be below 4294967296 (2**32): llama.cpp takes a uint32 seed; give "
                               "a smaller one, e.g. seed % 2**32")


def test_every_uint32_seed_is_taken():
    np = pytest.importorskip("numpy")
    assert ChatRequest("hi", seed=2**32 - 1).seed == 2**32 - 1
    assert ChatRequest("hi", seed=np.uint32(2**32 - 1)).seed == 2**32 - 1


# ------------------------------------------------------------------------- genre names

@pytest.mark.parametrize("names", [{"Drama", "Comedy"}, frozenset({"Drama", "Comedy"}), {"Drama": 0, "Comedy": 1},
                                   {"Drama": 0, "Comedy": 1}.keys()])
def test_genre_names_without_a_column_order_are_refused(names):
    import dataclasses

    with pytest.raises(ValueError) as info:
        dataclasses.replace(CATALOG, genre_names=names)
    assert str(info.value) == (
        f"genre_names={names!r} is a {type(names).__name__}, whose order does not say which column each name is; "
        "give a list of genre names in the order of the columns of genres (sorted() gives an order, but not the "
        "columns')")


def test_genre_names_in_a_list_or_a_generator_are_taken_in_order():
    import dataclasses

    assert dataclasses.replace(CATALOG, genre_names=["Drama", "Comedy"]).genre_names == ("Drama", "Comedy")
    assert dataclasses.replace(CATALOG, genre_names=(g for g in ("Drama", "Comedy"))).genre_names == ("Drama", "Comedy")


# ------------------------------------------------------------------------ sweep folders

def test_a_sweep_folder_lists_its_runs_whatever_their_names(tmp_path):
    from recoworld.apps.view.data import run_catalog

    # "²".isdigit() is true, but int("²") fails: the sort key raised instead of the message.
    for name in ("10", "²", "2", "٣"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text("world: {}\n")
    with pytest.raises(FileNotFoundError) as info:
        run_catalog(tmp_path)
    assert str(info.value) == (f"{tmp_path} is not a run's directory, but holds 4 run(s) (2, ٣, 10, ²): give one of "
                               f"them, e.g. {tmp_path / '2'}")


# ------------------------------------------------------------------------------ ranges

def test_the_open_low_unit_range_is_one_constant():
    from recoworld.config_checks import OPEN_LOW_UNIT
    from recoworld.simulators.llm_config import LLMUserConfig

    assert str(OPEN_LOW_UNIT) == "in (0, 1]"
    assert all(LLMUserConfig.RANGES[name] is OPEN_LOW_UNIT for name in ("click_watch", "like_watch", "dislike_watch"))
    with pytest.raises(ValueError, match=re.escape("top_p=0.0: must be in (0, 1]")):
        ChatRequest("hi", top_p=0.0)
