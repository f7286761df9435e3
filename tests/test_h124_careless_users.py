"""What a careless user of the LLM users gets wrong, and what they are told: config values of
the wrong type or range, a model path that holds no model, a cache path that is someone
else's file, a prompt too long for the context window, and a model reply that gives one item
two different reactions."""

from __future__ import annotations

import json

import pytest
import torch

from recoworld.catalog import Catalog
from recoworld.llm import BackendCallError, ChatCache, ChatCacheError, ChatRequest, ScriptedChatModel
from recoworld.llm.structured import parse_reply
from recoworld.simulators.hybrid_config import HybridUserConfig
from recoworld.simulators.llm_config import LLMUserConfig
from recoworld.simulators.llm_user import LLMUsers
from recoworld.simulators.memory import MemoryConfig
from recoworld.simulators.replies import slate_reply_model


def slate_ids(call) -> list[str]:
    return call.json_schema["properties"]["reactions"]["required"]


def reply(reactions: dict) -> str:
    return json.dumps({"reactions": reactions, "mindset": "Fine.", "satisfaction": 3, "leave": False,
                       "instruction": None})


# ------------------------------------------------------------------------- ChatRequest

def test_a_single_stop_string_is_one_stop_string_not_its_characters():
    request = ChatRequest("hi", stop="END")
    assert request.stop == ("END",)
    assert request.sampling()["stop"] == ["END"]


@pytest.mark.parametrize("sampling, message", [
    ({"temperature": float("nan")}, "temperature=nan: must be a finite number >= 0"),
    ({"temperature": "0.7"}, "temperature='0.7': must be a finite number >= 0"),
    ({"max_tokens": 2.5}, "max_tokens=2.5: must be an integer >= 1"),
    ({"max_tokens": True}, "max_tokens=True: must be an integer >= 1"),
    ({"max_tokens": 0}, "max_tokens=0: must be an integer >= 1"),
    ({"top_p": 1.5}, "top_p=1.5: must be in (0, 1]"),
    ({"top_p": 0.0}, "top_p=0.0: must be in (0, 1]"),
    ({"seed": -1}, "seed=-1: must be an integer >= 0"),
    ({"seed": 1.5}, "seed=1.5: must be an integer >= 0"),
    ({"stop": ["END", ""]}, "stop=['END', ''] holds ''; give non-empty strings"),
])
def test_chat_request_refuses_sampling_it_cannot_honour(sampling, message):
    with pytest.raises(ValueError) as info:
        ChatRequest("hi", **sampling)
    assert str(info.value) == message


def test_chat_request_keeps_python_numbers_as_given_and_reads_numpy_ones():
    np = pytest.importorskip("numpy")
    # An int temperature stays an int: it is hashed into cache keys, which must not move.
    assert ChatRequest("hi", temperature=0).sampling()["temperature"] == 0
    assert type(ChatRequest("hi", temperature=0).temperature) is int
    request = ChatRequest("hi", max_tokens=np.int64(7), seed=np.uint32(3))
    assert (type(request.max_tokens), type(request.seed)) == (int, int)
    json.dumps(request.sampling())  # cache keys are JSON


# ------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("value", [0, -3, "300", 1.5, True])
def test_llm_user_max_tokens_is_checked_when_the_config_is_built(value):
    with pytest.raises(ValueError) as info:
        LLMUserConfig(max_tokens=value)
    assert str(info.value) == f"LLMUserConfig.max_tokens={value!r}: must be an integer >= 1"


def test_llm_user_max_tokens_none_sizes_the_reply_by_the_slate_and_a_number_is_used_as_given():
    catalog = Catalog.synthetic(30, n_genres=3, seed=0)
    slates = torch.tensor([[1, 2, 3, 4]])
    for max_tokens, expected in ((None, 256 + 70 * 4), (1, 1), (900, 900)):
        users = LLMUsers(catalog, ScriptedChatModel([]), {"max_tokens": max_tokens})
        users.reset(1, seed=0)
        assert users.requests(slates)[0].max_tokens == expected


@pytest.mark.parametrize("field, value", [("app", None), ("app", "  "), ("initial_mindset", ""),
                                          ("initial_mindset", 5)])
def test_words_that_enter_every_prompt_must_be_words(field, value):
    with pytest.raises(ValueError) as info:
        LLMUserConfig(**{field: value})
    assert str(info.value) == f"LLMUserConfig.{field}={value!r}: must be a non-blank string"
    if field == "app":
        with pytest.raises(ValueError, match=f"HybridUserConfig.app={value!r}: must be a non-blank string"):
            HybridUserConfig(app=value)


@pytest.mark.parametrize("field, value, message", [
    ("max_tokens", 0, "HybridUserConfig.max_tokens=0: must be an integer >= 1"),
    ("history_items", -1, "HybridUserConfig.history_items=-1: must be an integer >= 0"),
])
def test_hybrid_user_config_ranges(field, value, message):
    with pytest.raises(ValueError) as info:
        HybridUserConfig(**{field: value})
    assert str(info.value) == message


@pytest.mark.parametrize("field, value, message", [
    ("max_interactions", 2.5, "MemoryConfig.max_interactions=2.5: must be an integer >= 0"),
    ("max_interactions", "5", "MemoryConfig.max_interactions='5': must be an integer >= 0"),
    ("max_sessions", None, "MemoryConfig.max_sessions=None: must be an integer >= 0"),
    ("max_sessions", -1, "MemoryConfig.max_sessions=-1: must be an integer >= 0"),
    ("max_reason_chars", 0, "MemoryConfig.max_reason_chars=0: must be an integer >= 1"),
    ("remember_skips", "no", "MemoryConfig.remember_skips='no': must be True or False"),
])
def test_memory_config_names_the_bad_bound(field, value, message):
    with pytest.raises(ValueError) as info:
        MemoryConfig(**{field: value})
    assert str(info.value) == message
    with pytest.raises(ValueError, match=f"MemoryConfig.{field}="):
        LLMUserConfig(memory={field: value})


# ------------------------------------------------------------------------------ replies

def test_an_item_given_two_different_reactions_goes_back_for_repair():
    schema = slate_reply_model(("Action", "Comedy"), (1, 2))
    text = ('{"reactions": {"1": {"action": "click", "reason": "a"}, "1": {"action": "skip", "reason": "b"}, '
            '"2": {"action": "like", "reason": "c"}}, "mindset": "m", "satisfaction": 3, "leave": false, '
            '"instruction": null}')
    with pytest.raises(ValueError, match="the JSON gives key '1' twice in one object, with different values"):
        parse_reply(text, schema)
    # The same reaction given twice says one thing: it is read.
    same = text.replace('"action": "skip", "reason": "b"', '"action": "click", "reason": "a"')
    assert parse_reply(same, schema).reactions["1"].action == "click"

    catalog = Catalog.synthetic(30, n_genres=3, seed=0)
    twice = '{"action": "click", "reason": "a"}, "%s": {"action": "skip", "reason": "b"}'

    def model(call):
        ids = slate_ids(call)
        if len(call.messages) == 2:  # the first try: the first item reacted to twice
            return reply({ids[0]: "X", **{i: {"action": "like", "reason": "r"} for i in ids[1:]}}).replace(
                '"X"', twice % ids[0], 1)
        return reply({i: {"action": "like", "reason": "r"} for i in ids})

    users = LLMUsers(catalog, ScriptedChatModel(model), {"on_failure": "fail"})
    users.reset(1, seed=0)
    response = users.respond(torch.tensor([[4, 5, 6]]))
    assert response.liked.tolist() == [[True, True, True]]  # the repair's answer, not a guess
    assert users.metrics()["llm_user_repaired_steps"] == 1


# -------------------------------------------------------------------------- the cache

def test_a_cache_path_that_is_a_file_without_a_suffix_is_refused_and_left_alone(tmp_path):
    notes = tmp_path / "notes"
    notes.write_text("my notes")
    with pytest.raises(ChatCacheError) as info:
        ChatCache(notes)
    assert str(info.value) == (f"the LLM cache path {notes} is a file, not a directory; set llm.cache_dir to a "
                               "directory (the cache is llm_cache.sqlite inside it)")
    assert notes.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


# ------------------------------------------------------------------------ model paths

@pytest.mark.parametrize("where", ["missing", "empty_dir"])
def test_a_transformers_model_path_without_a_model_is_named(tmp_path, where):
    pytest.importorskip("transformers")
    from recoworld.llm import make_chat_model

    path = tmp_path / "model"
    if where == "empty_dir":
        path.mkdir()
        expected = f"model={str(path)!r} is a directory without config.json"
    else:
        expected = f"model={str(path)!r} is not a directory"
    with pytest.raises(FileNotFoundError) as info:
        make_chat_model(backend="transformers", model=str(path))
    assert str(info.value).startswith(expected)
    assert "a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct" in str(info.value)


def test_a_llama_cpp_model_path_that_is_no_gguf_is_named(tmp_path):
    pytest.importorskip("llama_cpp")
    from recoworld.llm import make_chat_model

    path = tmp_path / "model.gguf"
    path.write_text("<html>not found</html>")
    with pytest.raises(ValueError) as info:
        make_chat_model(backend="llama_cpp", model=str(path))
    assert str(info.value).startswith(f"model_path={str(path)!r} is not a GGUF file (it starts with b'<htm', "
                                      "not b'GGUF'); give a .gguf model")


def test_a_prompt_beyond_the_context_window_says_to_raise_n_ctx():
    pytest.importorskip("llama_cpp")
    from embedded_model import embedded_gguf
    from recoworld.llm import make_chat_model

    llm = make_chat_model(backend="llama_cpp", model=str(embedded_gguf()), n_ctx=256, max_repairs=0)
    try:
        with pytest.raises(BackendCallError) as info:
            llm.chat("a long title " * 200, max_tokens=8)
    finally:
        llm.close()
    assert "exceed context window of 256" in str(info.value)
    assert info.value.hint.startswith("the prompt and its reply do not fit the context window: raise llm.n_ctx "
                                      "(now 256, at most the model's own)")
