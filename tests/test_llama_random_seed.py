"""llama.cpp reads the seed 0xFFFFFFFF as "draw a seed at random" (``LLAMA_DEFAULT_SEED``),
so a request seeded with it, which the users' derived seeds hit once in 2**32, got a reply no
rerun repeated: :meth:`ChatRequest.sampling`, which every backend reads, passes it on as
another fixed seed (tests/test_h138_random_seed.py checks the other backends' arguments)."""

import pytest

pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')

from embedded_model import embedded_gguf  # noqa: E402

from recoworld.llm import ChatRequest  # noqa: E402
from recoworld.llm.llama_cpp_backend import LlamaCppChatModel  # noqa: E402
from recoworld.llm.types import RANDOM_SEED  # noqa: E402


def test_the_seed_llama_cpp_reads_as_random_gives_the_same_reply_every_time():
    import llama_cpp

    assert RANDOM_SEED == llama_cpp.LLAMA_DEFAULT_SEED
    llm = LlamaCppChatModel(embedded_gguf(), n_ctx=256, n_threads=1)
    seeds = []
    real = llm._llama.create_chat_completion

    def recording(**args):
        seeds.append(args.get("seed"))
        return real(**args)

    llm._llama.create_chat_completion = recording
    try:
        request = ChatRequest("Name a film.", temperature=1.5, max_tokens=12, seed=RANDOM_SEED)
        replies = {llm.chat(request).text for _ in range(3)}
    finally:
        llm.close()
    assert seeds == [RANDOM_SEED - 1] * 3
    assert len(replies) == 1
