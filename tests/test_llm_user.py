"""LLM users and hybrid users with a ScriptedChatModel.

The scripted model stands in for the LLM: each test's script plays the part of a model that
replies in a given way (valid JSON that depends only on the prompt, an id outside the
slate, garbage), so that the simulator's own behaviour — prompts, parsing, the action
mapping, memory, the failure policy, call counts — is checked exactly and fast. The real
embedded model is exercised in ``test_llm_user_embedded.py``.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import torch

import recoworld
from recoworld.catalog import Catalog
from recoworld.data.movielens import load_catalog, load_movielens_100k
from recoworld.llm import ScriptedChatModel, read_data
from recoworld.llm.structured import parse_reply
from recoworld.simulators.hybrid import HybridUsers
from recoworld.simulators.llm_user import LLMUserError, LLMUsers
from recoworld.simulators.memory import MemoryConfig, UserMemory
from recoworld.simulators.persona import MovieLensPersonas, MovieLensPopulation, persona_from_traits
from recoworld.simulators.population import UserTraits
from recoworld.simulators.replies import slate_reply_model
from recoworld.simulators.statistical import StatisticalUsers

ACTIONS = ("click", "skip", "like", "dislike")


def digest(call) -> int:
    """A number that depends only on the conversation (so replies are deterministic)."""
    text = json.dumps(call.messages, sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def slate_ids(call) -> list[str]:
    return call.json_schema["properties"]["reactions"]["required"]


def varied_user(call) -> str:
    """A model that answers validly, with choices drawn from a hash of the prompt."""
    h = digest(call)
    reply = {
        "reactions": {i: {"action": ACTIONS[(h >> (2 * k)) % 4], "reason": f"reason {i}"}
                      for k, i in enumerate(slate_ids(call))},
        "mindset": f"mood {h % 97}", "satisfaction": 1 + h % 5, "leave": h % 5 == 0,
        "instruction": ({"text": "More Comedy, please.", "more": ["Comedy"], "less": [], "novelty": 1}
                        if h % 3 == 0 else None),
    }
    return json.dumps(reply)


def fixed_user(actions, satisfaction=4, leave=False, instruction=None):
    """A model that always answers ``actions`` in slate order."""
    def answer(call):
        return json.dumps({"reactions": {i: {"action": a, "reason": f"because {a}"}
                                         for i, a in zip(slate_ids(call), actions)},
                           "mindset": "Content.", "satisfaction": satisfaction, "leave": leave,
                           "instruction": instruction})
    return answer


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(200, n_genres=6, seed=0)


def slates_for(n_users, k, n_items, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n_items, generator=gen)[:k] for _ in range(n_users)])


# --------------------------------------------------------------------------- contract

def test_llm_users_pass_check_simulator(catalog):
    """Stands in for a deterministic model (greedy decoding): replies depend only on the prompt."""
    recoworld.check_simulator(LLMUsers(catalog, ScriptedChatModel(varied_user)), steps=6)


def test_hybrid_users_pass_check_simulator(catalog):
    """Stands in for a model that voices every instruction."""
    model = ScriptedChatModel(lambda call: json.dumps({"mindset": "Bored.", "instruction": "Something else!"}))
    recoworld.check_simulator(HybridUsers(catalog, model), steps=6)


def test_actions_map_to_the_documented_response(catalog):
    """Stands in for a model that clicks, skips, likes and dislikes the four items in order."""
    sim = LLMUsers(catalog, ScriptedChatModel(fixed_user(["click", "skip", "like", "dislike"], satisfaction=4)))
    sim.reset(2, seed=0)
    r = sim.respond(slates_for(2, 4, catalog.n_items))
    c = sim.config
    assert r.examined.all()
    assert r.clicked.tolist() == [[True, False, True, True]] * 2
    assert r.watch_fraction[0].tolist() == pytest.approx([c.click_watch, 0.0, c.like_watch, c.dislike_watch])
    assert r.liked.tolist() == [[False, False, True, False]] * 2
    assert r.rating.tolist() == [[0, 0, c.like_rating, c.dislike_rating]] * 2
    assert r.satisfaction.tolist() == [0.75, 0.75]  # (4 - 1) / 4
    assert not r.left_session.any() and r.leave_hazard.tolist() == [0.0, 0.0]
    assert r.instruction_text == [None, None] and not r.instruction.active.any()


def test_requests_fan_out_concurrently_one_per_user(catalog):
    """Stands in for a remote endpoint with 0.3 s latency per call."""
    model = ScriptedChatModel(varied_user, delay_s=0.3, max_concurrency=8)
    sim = LLMUsers(catalog, model)
    sim.reset(6, seed=0)
    start = time.perf_counter()
    sim.respond(slates_for(6, 3, catalog.n_items))
    assert len(model.calls) == 6
    assert time.perf_counter() - start < 6 * 0.3  # overlapping, not one after the other


def test_a_user_is_the_same_whatever_else_is_in_the_batch(catalog):
    """Stands in for a deterministic model: equal prompts must give equal replies."""
    slates = slates_for(3, 4, catalog.n_items, seed=1)
    together = LLMUsers(catalog, ScriptedChatModel(varied_user))
    together.reset(3, seed=[5, 6, 7])
    alone = LLMUsers(catalog, ScriptedChatModel(varied_user))
    alone.reset(1, seed=[6])
    for step in range(4):
        assert together.requests(slates)[1].messages == alone.requests(slates[1:2])[0].messages
        a, b = together.respond(slates), alone.respond(slates[1:2])
        for name, value in a.tensor_fields().items():
            assert torch.equal(value[1:2], getattr(b, name)), name
        if a.churned.any() or b.churned.any():
            break


# ----------------------------------------------------------------------------- replies

def test_reply_about_an_item_outside_the_slate_is_rejected():
    model = slate_reply_model(("Comedy", "Drama"), (12, 45))
    good = {"reactions": {"12": {"action": "click", "reason": "x"}, "45": {"action": "skip", "reason": "y"}},
            "mindset": "ok", "satisfaction": 3, "leave": False, "instruction": None}
    assert parse_reply(json.dumps(good), model).reactions["45"].action == "skip"
    bad = json.loads(json.dumps(good))
    bad["reactions"]["999"] = bad["reactions"].pop("45")
    with pytest.raises(ValueError, match="item 999 was not in the slate.*12, 45") as err:
        parse_reply(json.dumps(bad), model)
    assert "no reaction to item 45" in str(err.value)
    schema = model.model_json_schema()  # what constrained decoding enforces
    assert schema["properties"]["reactions"]["required"] == ["12", "45"]
    assert schema["properties"]["reactions"]["additionalProperties"] is False


def test_instruction_must_use_catalog_genres_and_say_something_in_words():
    model = slate_reply_model(("Comedy", "Drama"), (1,))
    def reply(instruction):
        return json.dumps({"reactions": {"1": {"action": "skip", "reason": ""}}, "mindset": "m",
                           "satisfaction": 2, "leave": False, "instruction": instruction})
    with pytest.raises(ValueError, match="instruction.more"):
        parse_reply(reply({"text": "x", "more": ["Jazz"], "less": [], "novelty": 0}), model)
    cancelled = parse_reply(reply({"text": "x", "more": ["Drama"], "less": ["Drama"], "novelty": 0}), model)
    assert (cancelled.instruction.more, cancelled.instruction.less) == ([], [])  # Drama in both: no wish
    both = parse_reply(reply({"text": "x", "more": ["Comedy", "Comedy"], "less": ["Comedy", "Drama"], "novelty": 0}),
                       model).instruction
    assert (both.more, both.less) == ([], ["Drama"])
    with pytest.raises(ValueError, match="instruction.text is blank"):
        parse_reply(reply({"text": "   ", "more": ["Drama"], "less": [], "novelty": 0}), model)


def test_a_json_true_or_false_is_no_satisfaction_and_no_novelty():
    """pydantic would read ``true`` as 1: the unhappiest satisfaction, guessed, not stated."""
    model = slate_reply_model(("Comedy", "Drama"), (1,))
    good = {"reactions": {"1": {"action": "skip", "reason": ""}}, "mindset": "m", "satisfaction": 2, "leave": False,
            "instruction": {"text": "x", "more": ["Drama"], "less": [], "novelty": 1}}
    assert parse_reply(json.dumps(good), model).satisfaction == 2
    with pytest.raises(ValueError, match="satisfaction: .*true is not a number"):
        parse_reply(json.dumps({**good, "satisfaction": True}), model)
    with pytest.raises(ValueError, match="instruction.novelty: .*false is not a number"):
        parse_reply(json.dumps({**good, "instruction": {**good["instruction"], "novelty": False}}), model)
    assert model.model_json_schema()["properties"]["satisfaction"] == {"enum": [1, 2, 3, 4, 5], "type": "integer"}


def test_out_of_slate_reply_is_repaired_by_the_llm_layer(catalog):
    """Stands in for a model that first names an item it was not shown, then corrects itself."""
    def answer(call):
        ids = slate_ids(call)
        if len(call.messages) == 2:  # first attempt: a wrong id in place of the last one
            ids = ids[:-1] + ["99999"]
        return json.dumps({"reactions": {i: {"action": "click", "reason": "r"} for i in ids},
                           "mindset": "m", "satisfaction": 3, "leave": False, "instruction": None})
    model = ScriptedChatModel(answer)
    sim = LLMUsers(catalog, model)
    sim.reset(1, seed=0)
    r = sim.respond(slates_for(1, 3, catalog.n_items))
    assert r.clicked.all()
    assert len(model.calls) == 2 and "item 99999 was not in the slate" in model.calls[1].messages[-1]["content"]
    m = sim.metrics()
    assert m["llm_repairs"] == 1 and m["llm_user_repaired_steps"] == 1 and m["llm_user_failures"] == 0


# ------------------------------------------------------------------- failure policy

def garbage_for(slot_marker: str):
    """A model that answers garbage to the user whose prompt contains ``slot_marker``."""
    def answer(call):
        if slot_marker in call.messages[0]["content"]:
            return "I am not sure what you mean."
        return varied_user(call)
    return answer


def test_failure_policy_fail_raises_with_the_raw_text_and_changes_nothing(catalog):
    """Stands in for a model that never produces JSON."""
    sim = LLMUsers(catalog, ScriptedChatModel(lambda call: "Sorry, no JSON today."), config={"on_failure": "fail"})
    sim.reset(2, seed=0)
    twin_counter = sim.twin.counter.clone()
    with pytest.raises(LLMUserError, match="slot 0 .*Sorry, no JSON today.*on_failure='fallback'") as err:
        sim.respond(slates_for(2, 3, catalog.n_items))
    assert [f.slot for f in err.value.failures] == [0, 1]
    assert err.value.failures[0].raw_texts == ("Sorry, no JSON today.",) * 3  # first try + 2 repairs
    assert sim.counter.tolist() == [0, 0] and torch.equal(sim.twin.counter, twin_counter)
    assert sim.metrics()["llm_user_failures"] == 2


def test_failure_policy_fallback_uses_the_statistical_twin_for_that_user(catalog):
    """Stands in for a model that fails for one user (garbage) and answers the other."""
    slates = slates_for(2, 4, catalog.n_items, seed=3)
    sim = LLMUsers(catalog, ScriptedChatModel(lambda call: "no JSON" if "seed-0-user" in call.messages[1]["content"]
                                              else varied_user(call)))
    sim.reset(2, seed=[10, 11])
    sim.mindset[0] = "seed-0-user"  # marks user 0's prompt for the script
    reference = StatisticalUsers(catalog)
    reference.reset(2, seed=[10, 11])
    r, expected = sim.respond(slates), reference.respond(slates)
    for name in ("examined", "clicked", "watch_fraction", "liked", "rating", "satisfaction", "leave_hazard",
                 "left_session", "returned", "return_gap"):
        assert torch.equal(getattr(r, name)[0], getattr(expected, name)[0]), name
    assert r.examined[1].all()  # user 1 is the LLM's
    (failure,) = sim.failures
    assert failure.slot == 0 and failure.handled == "fallback" and failure.raw_texts[-1] == "no JSON"
    m = sim.metrics()
    assert m["llm_user_failures"] == 1 and m["llm_user_fallback_steps"] == 1 and m["llm_user_failure_rate"] == 0.5
    assert all(i.reason.endswith("statistical stand-in") for i in sim.memories[0].interactions)
    assert len(sim.memories[0].interactions) == int(r.clicked[0].sum())  # the twin's clicks, remembered


# ---------------------------------------------------------------- sessions and memory

def test_leaving_ends_the_session_into_memory_and_returning_is_reproducible(catalog):
    """Stands in for a model that is unhappy and leaves at every step."""
    def run():
        sim = LLMUsers(catalog, ScriptedChatModel(fixed_user(["skip"] * 3, satisfaction=2, leave=True)))
        sim.reset(8, seed=0)
        return sim, sim.respond(slates_for(8, 3, catalog.n_items))
    sim, r = run()
    assert r.left_session.all() and r.leave_hazard.tolist() == [1.0] * 8
    assert torch.equal(r.churned, ~r.returned)
    assert bool((r.return_gap[r.returned] > 0).all()) and bool(torch.isinf(r.return_gap[r.churned]).all())
    # a one-step session stated 2/5: its memory 1/4 gives a return probability strictly inside (0, 1)
    assert 0 < int(r.returned.sum()) < 8
    assert torch.equal(run()[1].returned, r.returned)
    for b in r.returned.nonzero().flatten().tolist():
        memory = sim.memories[b]
        assert memory.sessions_finished == 1 and int(sim.session_index[b]) == 1
        assert "Session 1 (1 steps)" in memory.render(sim.representation.describe)


def test_voiced_instruction_is_in_force_and_compliance_is_scored(catalog):
    """Stands in for a model that asks for more of the first genre at every step."""
    genre = catalog.genre_names[0]
    instruction = {"text": f"More {genre}!", "more": [genre], "less": [], "novelty": 0}
    sim = LLMUsers(catalog, ScriptedChatModel(fixed_user(["click", "skip"], instruction=instruction)))
    sim.reset(1, seed=0)
    first = sim.respond(slates_for(1, 2, catalog.n_items))
    assert first.instruction.active.tolist() == [True] and first.instruction_text == [f"More {genre}!"]
    assert first.instruction.more[0].nonzero().flatten().tolist() == [0]
    assert not first.instruction_in_force.any() and first.compliance.tolist() == [0.0]
    in_genre = catalog.genres[:, 0].nonzero().flatten()[:1]
    other = (~catalog.genres[:, 0]).nonzero().flatten()[:1]
    second = sim.respond(torch.stack([torch.cat([in_genre, other])]))
    assert second.instruction_in_force.tolist() == [True]
    # half the slate is in the asked-for genre: share 0.5 over more_share 0.3, capped at 1
    assert second.compliance.tolist() == pytest.approx([1.0])


def test_memory_stays_bounded_over_a_long_life():
    config = MemoryConfig(max_interactions=4, max_sessions=2, max_reason_chars=20)
    memory = UserMemory(config)
    for session in range(30):
        for step in range(5):
            memory.record([(step, "click", "a very long reason " * 10), (step + 1, "skip", "no")], lambda i: ("Drama",))
        memory.end_session(f"mindset {session}", 1 + session % 5)
    assert len(memory.interactions) == 4 and len(memory.sessions) == 2
    assert memory.sessions_finished == 30 and memory.folded_sessions == 28
    assert all(len(i.reason) <= 20 for i in memory.interactions)
    assert memory.folded_clicks == 28 * 5
    text = memory.render(lambda items: [f"item {i}" for i in items])
    assert text.startswith("Earlier: 28 sessions") and "Session 30 (5 steps)" in text and len(text) < 1000


def test_history_representation_is_selectable(catalog):
    """Stands in for any valid model: only the prompt is checked."""
    sim = LLMUsers(catalog, ScriptedChatModel(fixed_user(["like", "like", "like"])),
                   config={"representation": {"kind": "semantic_id", "levels": 2, "codebook_size": 8}})
    sim.reset(1, seed=0)
    slates = slates_for(1, 3, catalog.n_items)
    sim.respond(slates)
    values = read_data(sim.prompt(0, slates[0].tolist())[1]["content"])
    history = [v for v in values if isinstance(v, dict) and "action" in v]
    # codes, not titles, in the history
    assert len(history) == 3 and all(v["item"].startswith("<a") and "[" not in v["item"] for v in history)
    shown = [v for v in values if isinstance(v, dict) and "id" in v]
    # and each slate item carries its code beside its title
    assert [v["id"] for v in shown] == slates[0].tolist()
    assert all("[" in v["item"] and v["code"].startswith("<a") for v in shown)


# ------------------------------------------------------------------------- personas

@pytest.fixture(scope="module")
def movielens():
    return load_movielens_100k()


def test_movielens_persona_comes_from_the_user_and_their_ratings(movielens):
    book = MovieLensPersonas(movielens)
    persona = book.persona(0)
    user = movielens.users.iloc[0]
    assert (persona.age, persona.gender, persona.occupation) == (user["age"], user["gender"], user["occupation"])
    ratings = movielens.ratings[movielens.ratings["user_id"] == 0]
    titles = movielens.items["title"]
    stars = dict(zip(titles[ratings["item_id"]].tolist(), ratings["rating"].tolist()))
    assert persona.liked_titles and all(stars[t] >= 4 for t in persona.liked_titles)
    assert all(stars[t] <= 2 for t in persona.disliked_titles)
    counts = {}
    for genres in movielens.items["genres"][ratings["item_id"]]:
        for g in genres:
            counts[g] = counts.get(g, 0) + 1
    assert persona.watched_genres[0] == max(counts, key=counts.get)
    assert not set(persona.favourite_genres) & set(persona.disliked_genres)
    text = persona.describe()
    assert text.startswith(f"You are a {user['age']}-year-old") and persona.liked_titles[0] in text


def test_persona_from_traits_names_the_genres_nearest_the_interest(catalog):
    centroids = torch.nn.functional.normalize(catalog.genres.float().T @ catalog.features, dim=1)
    traits = UserTraits(interest=centroids[[2]], patience=torch.tensor([0.95]), novelty_trait=torch.tensor([0.8]),
                        activity=torch.tensor([1.0]), popularity_bias=torch.tensor([0.3]),
                        source_user=torch.tensor([-1]))
    persona = persona_from_traits(traits, 0, catalog)
    assert persona.favourite_genres[0] == catalog.genre_names[2]
    assert catalog.genre_names[2] not in persona.disliked_genres
    assert "patient" in persona.describe() and "curious" in persona.describe()


def test_movielens_population_draws_a_segment_and_llm_users_get_those_personas(movielens):
    ml_catalog = load_catalog()
    population = MovieLensPopulation(genders=["F"], max_age=30)
    sim = LLMUsers(ml_catalog, ScriptedChatModel(varied_user), population=population)
    sim.reset(5, seed=0)
    users = movielens.users.set_index("user_id")
    for persona, source in zip(sim.personas_in_use, sim.twin.source_user.tolist()):
        assert persona.source_user == source >= 0
        assert users.loc[source, "gender"] == "F" and users.loc[source, "age"] <= 30
    again = LLMUsers(ml_catalog, ScriptedChatModel(varied_user), population=population)
    again.reset(5, seed=0)
    assert again.personas_in_use == sim.personas_in_use
    with pytest.raises(ValueError, match="no MovieLens user matches"):
        MovieLensPopulation(genders=["F"], max_age=5).eligible()
    with pytest.raises(ValueError, match="needs the MovieLens-100K catalog"):
        LLMUsers(Catalog.synthetic(50), ScriptedChatModel(varied_user), population=population).reset(1, seed=0)


# --------------------------------------------------------------------------- hybrid

def test_hybrid_makes_one_call_per_disengagement_and_keeps_the_core_decisions(catalog):
    """Stands in for a model that voices instructions in its own words."""
    model = ScriptedChatModel(lambda call: json.dumps({"mindset": "Restless.", "instruction": "Shake it up!"}))
    sim = HybridUsers(catalog, model)
    core = StatisticalUsers(catalog)
    sim.reset(64, seed=0)
    core.reset(64, seed=0)
    slate = slates_for(64, 5, catalog.n_items, seed=2)
    spoke = 0
    for step in range(15):
        r, expected = sim.respond(slate), core.respond(slate)
        for name, value in expected.tensor_fields().items():
            assert torch.equal(getattr(r, name), value), name
        speakers = expected.instruction.active
        spoke += int(speakers.sum())
        assert len(model.calls) == spoke  # one call per user who speaks, none otherwise
        assert [t for t, s in zip(r.instruction_text, speakers) if s] == ["Shake it up!"] * int(speakers.sum())
        gone = r.churned.nonzero().flatten()
        if len(gone):
            seeds = [1000 + 64 * step + int(g) for g in gone]
            sim.reset(64, seed=seeds, users=gone)
            core.reset(64, seed=seeds, users=gone)
    assert spoke > 0
    assert sim.metrics()["hybrid_calls"] == spoke


def voicing_hybrid_users(catalog, llm, n_users, **config):
    """Hybrid users who all voice at their first step, the response to one slate, and the
    template sentences their statistical core says alone."""
    hybrid = HybridUsers(catalog, llm, statistical={"voice_probability": 1.0, "instruction_threshold": 0.0},
                         **config)
    core = StatisticalUsers(catalog, hybrid.core.config)
    hybrid.reset(n_users, seed=0)
    core.reset(n_users, seed=0)
    slate = slates_for(n_users, 3, catalog.n_items)
    return hybrid, hybrid.respond(slate), list(core.respond(slate).instruction_text)


def test_hybrid_failure_keeps_the_template_sentence_or_fails(catalog):
    """Stands in for a model that never produces JSON."""
    fallback, r, template = voicing_hybrid_users(catalog, ScriptedChatModel(lambda call: "nope"), 4)
    assert r.instruction.active.all() and list(r.instruction_text) == template
    assert fallback.metrics()["hybrid_failures"] == 4 and fallback.failures[0].raw_texts[-1] == "nope"

    with pytest.raises(LLMUserError, match="nope"):
        voicing_hybrid_users(catalog, ScriptedChatModel(lambda call: "nope"), 4, config={"on_failure": "fail"})


def test_hybrid_prompt_carries_persona_memory_and_the_structured_wish(catalog):
    """Stands in for a model that voices instructions."""
    model = ScriptedChatModel(lambda call: json.dumps({"mindset": "Restless.", "instruction": "Shake it up!"}))
    sim = HybridUsers(catalog, model, statistical={"voice_probability": 1.0, "instruction_threshold": 0.0})
    sim.reset(1, seed=0)
    sim.respond(slates_for(1, 3, catalog.n_items))
    system, user = (m["content"] for m in model.calls[0].messages[:2])
    assert system.startswith("You are a viewer") and "You love" in system
    assert "What you want now:" in user and "more " in user


# ---------------------------------------------------------------------------- configs

@pytest.mark.parametrize("name", ["llm", "hybrid"])
def test_simulator_config_files_match_their_schemas_and_instantiate(name, catalog):
    """The YAML lists every field of its schema dataclass and nothing else, its chat model
    is the root llm node, and it builds the simulator the runner's way. The statistical
    parameters may lag behind StatisticalUserConfig (a field the file lacks keeps its
    default) but never name a field it does not have."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from recoworld.simulators.hybrid import HybridSimulatorConfig
    from recoworld.simulators.llm_user import LLMSimulatorConfig

    schema = OmegaConf.to_container(OmegaConf.structured({"llm": LLMSimulatorConfig,
                                                          "hybrid": HybridSimulatorConfig}[name]))
    with initialize_config_module("recoworld.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"simulator={name}", "llm.backend=openai", "llm.model=some-model",
                                           "llm.base_url=http://127.0.0.1:9/v1", "llm.cache_dir=null"])
    listed = OmegaConf.to_container(cfg.simulator)
    assert listed["llm"] == schema["llm"] == "${llm}"

    def keys(tree, prefix=""):
        return {prefix + k for k in tree} | {x for k, v in tree.items() if isinstance(v, dict)
                                             for x in keys(v, f"{prefix}{k}.")}
    statistical = {k for k in keys(schema) if k.startswith("statistical.")}
    assert keys(listed) - statistical == keys(schema) - statistical
    assert {k for k in keys(listed) if k.startswith("statistical.")} <= statistical
    make = instantiate(cfg.simulator, _partial_=True, _convert_="object")
    sim = make(catalog=catalog)
    assert sim.llm.backend == "openai" and sim.llm.model_id == "some-model"


def test_a_sentence_without_a_structured_wish_is_voiced_but_not_put_in_force(catalog):
    """Stands in for a model that complains without naming a genre or a novelty wish."""
    vague = {"text": "Meh, nothing grabs me.", "more": [], "less": [], "novelty": 0}
    sim = LLMUsers(catalog, ScriptedChatModel(fixed_user(["skip", "skip"], instruction=vague)))
    sim.reset(1, seed=0)
    first = sim.respond(slates_for(1, 2, catalog.n_items))
    assert first.instruction.active.tolist() == [True] and first.instruction_text == ["Meh, nothing grabs me."]
    second = sim.respond(slates_for(1, 2, catalog.n_items, seed=1))
    assert second.instruction_in_force.tolist() == [False] and second.compliance.tolist() == [0.0]


def test_a_blank_voice_is_a_failed_reply_not_an_empty_sentence(catalog):
    """Stands in for a small model that answers the schema with whitespace: a hybrid user
    keeps the core's template sentence, and an LLM user's blank mindset is sent for repair."""
    blank = ScriptedChatModel(lambda call: json.dumps({"mindset": "  ", "instruction": " \n "}), max_repairs=0)
    hybrid, r, template = voicing_hybrid_users(catalog, blank, 2, config={"max_fallback_share": 1.0})
    assert r.instruction.active.all() and list(r.instruction_text) == template
    assert all(text.strip() for text in r.instruction_text) and hybrid.mindset == [None, None]
    assert hybrid.metrics()["hybrid_failures"] == 2 and "blank" in hybrid.failures[0].error

    def blank_mindset(call):
        reply = json.loads(fixed_user(["click", "skip"])(call))
        return json.dumps({**reply, "mindset": "\t "})
    sim = LLMUsers(catalog, ScriptedChatModel(blank_mindset, max_repairs=0), config={"max_fallback_share": 1.0})
    sim.reset(1, seed=0)
    r = sim.respond(slates_for(1, 2, catalog.n_items))
    assert r.mindset_text == [None] and sim.mindset == [sim.config.initial_mindset]
    assert sim.metrics()["llm_user_fallback_steps"] == 1


def test_slots_an_autoreset_holds_idle_cost_no_call(catalog):
    import numpy as np

    from recoworld.envs import SlateVectorEnv

    model = ScriptedChatModel(fixed_user(["skip"] * 3, satisfaction=1, leave=True))
    sim = LLMUsers(catalog, model)
    env = SlateVectorEnv(4, simulator=sim, slate_size=3, num_candidates=10)
    env.reset(seed=0)
    env.action_space.seed(0)
    ended, idle_seen = np.zeros(4, dtype=bool), 0
    for _ in range(4):
        before = len(model.calls)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert len(model.calls) - before == 4 - int(ended.sum())  # one call per user not restarting
        idle_seen += int(ended.sum())
        ended = terminated | truncated
    assert idle_seen > 0
    assert sim.counts["user_steps"] == len(model.calls) and sim.counts["fallback_steps"] == 0


def test_the_log_keeps_llm_users_reasons_per_item_and_mindset_in_their_words(catalog, tmp_path):
    from recoworld.envs.rollout import rollout
    from recoworld.envs.slate import SlateVectorEnv
    from recoworld.logs import EpisodeLog, list_column, read_log
    import numpy as np

    from recoworld.agents import RandomAgent

    users = LLMUsers(catalog, ScriptedChatModel(fixed_user(["click", "skip", "like", "dislike"], satisfaction=4)))
    env = SlateVectorEnv(3, simulator=users, slate_size=4, num_candidates=8, max_steps=3)
    with EpisodeLog(tmp_path / "log.parquet") as log:
        rollout(env, RandomAgent(), n_steps=3, seed=0, logger=log)
    frame = read_log(tmp_path / "log.parquet")
    assert len(frame) > 0
    reasons = list_column(frame, "item_reasons")
    assert reasons.shape == (len(frame), 4)
    assert (reasons == np.array(["because click", "because skip", "because like", "because dislike"])).all()
    assert (frame["mindset_text"] == "Content.").all()
