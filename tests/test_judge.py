"""The profile-aware LLM judge: profiles, parsing of verdicts, position-bias control, agreement."""

import json
import math

import numpy as np
import pytest

from recoworld import Catalog
from recoworld.apps.judge import LLMJudge, agreement, pairwise_accuracy, spearman, user_profile
from recoworld.llm import ScriptedChatModel, read_data


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(50, n_genres=4, seed=0)


def test_profile_names_top_genres_liked_titles_and_the_request(catalog):
    genres = catalog.genres.numpy()
    drama = catalog.genre_names.index("Drama")
    dramas = [int(i) for i in np.flatnonzero(genres[:, drama] & (genres.sum(1) == 1))[:3]]
    history = dramas + [-1, -1]
    feedback = np.array([[0.9, 1.0], [0.8, 0.0], [0.1, 0.0], [0, 0], [0, 0]])
    text = user_profile(catalog, history, feedback, instruction="Less Drama, please.")
    assert text.startswith("Recently watched 3 movies, mostly Drama (100%).")
    assert f'Liked "{catalog.titles[dramas[0]]}".' in text
    assert f'Stopped early: "{catalog.titles[dramas[2]]}".' in text
    assert text.endswith('Their latest request: "Less Drama, please."')
    assert user_profile(catalog, [-1, -1]) == "A new user: no viewing history yet."


def test_pointwise_scores_are_parsed_and_failures_are_none(catalog):
    # Stands in for a judge that answers the first slate well and the second out of range, twice.
    script = [json.dumps({"reason": "good fit", "score": 4}), json.dumps({"reason": "meh", "score": 7}),
              json.dumps({"reason": "meh", "score": 9})]
    judge = LLMJudge(ScriptedChatModel(script, max_repairs=1), catalog)
    scores = judge.rate(["likes Drama", "likes Comedy"], [[1, 2, 3], [4, 5, 6]])
    assert scores[0].score == 4 and scores[0].reason == "good fit"
    assert scores[1] is None
    assert judge.counts["failures"] == 1 and judge.counts["requests"] == 2


def test_pairwise_verdicts_that_flip_with_the_order_become_ties(catalog):
    # Stands in for a judge with a position bias on the second pair: it always prefers slate A there.
    def answer(call):
        prompt = call.messages[-1]["content"]
        first_a = read_data(prompt.split("Slate A:\n")[1].split("Slate B:")[0])[0]
        if "likes Drama" in prompt:  # consistent: prefers the slate holding item 1 wherever it is
            better = "A" if first_a["title"] == catalog.titles[1] else "B"
        else:
            better = "A"
        return json.dumps({"reason": "because", "better": better})

    judge = LLMJudge(ScriptedChatModel(answer), catalog)
    verdicts = judge.compare(["likes Drama", "likes Comedy"], [[1, 2], [1, 2]], [[3, 4], [3, 4]])
    assert verdicts == [1, 0]
    assert judge.counts["order_flips"] == 1 and judge.counts["requests"] == 4
    one_order = LLMJudge(ScriptedChatModel(answer), catalog, swap=False)
    assert one_order.compare(["likes Comedy"], [[1, 2]], [[3, 4]]) == [1]


def test_spearman_and_pairwise_accuracy():
    truth = [0.1, 0.4, 0.2, 0.9]
    assert spearman([1, 3, 2, 5], truth) == pytest.approx(1.0)
    assert spearman([5, 3, 4, 1], truth) == pytest.approx(-1.0)
    assert math.isnan(spearman([3, 3, 3, 3], truth))
    assert spearman([1, None, 2, 5], truth) == pytest.approx(1.0)  # a failed verdict is dropped
    # +1 = A better. Pairs: A truly better, B truly better, a tie in truth (dropped), a judge tie.
    assert pairwise_accuracy([1, 1, -1, 0], [0.9, 0.1, 0.5, 0.7], [0.2, 0.3, 0.5, 0.1]) == pytest.approx(0.5)
    assert pairwise_accuracy([None, -1], [0.1, 0.1], [0.2, 0.3]) == 1.0


def test_agreement_reports_pointwise_and_pairwise_figures():
    result = agreement([1, 2, 3], [0.1, 0.2, 0.3], preferences=[1, 0, None], truth_a=[0.5, 0.5, 0.5],
                       truth_b=[0.1, 0.9, 0.2])
    assert result["spearman"] == pytest.approx(1.0)
    assert result["pointwise_pair_accuracy"] == 1.0 and result["n_rated"] == 3
    assert result["pairwise_accuracy"] == pytest.approx(0.75) and result["n_pairs"] == 2
    assert result["tie_rate"] == 0.5
    with pytest.raises(ValueError, match="2 scores for 3 truths"):
        agreement([1, 2], [0.1, 0.2, 0.3])
