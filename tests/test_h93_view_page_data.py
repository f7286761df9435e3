"""The viewer's page data, made a column at a time, is the data made a value at a time:
the same values, of the same types, in the same order, so the page keeps its bytes."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from recoworld.apps.view.data import _plain, _plain_column, viewer_payload
from recoworld.apps.view.page import render_page
from recoworld.logs import EpisodeLog


def value_by_value(values, bits):
    return [_plain(v, bits) for v in values.tolist()]


def float32_edges() -> np.ndarray:
    """float32 values where rounding to 4 decimals is hardest: exact ties (odd multiples of
    1/32 times 10**4 end in .5), the float32 nearest each tie k + 0.5 (over 10**4) and its
    neighbours, values that round to whole numbers, the extremes and the non-finite ones."""
    ties = np.arange(1, 4001, 2, dtype=np.float32) / 32
    near = (np.arange(0, 5000, dtype=np.float64) + 0.5) / 1e4
    near = near.astype(np.float32)
    neighbours = [np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(-np.inf))]
    specials = np.array([0.0, -0.0, 0.99996, 0.99995, 1.00005, -0.00004, -0.00005, 2.675, 1e-45, 1e-38, 16777217.0,
                         3e38, -3e38, np.finfo(np.float32).max, np.inf, -np.inf, np.nan], dtype=np.float32)
    bits = np.random.default_rng(0).integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([ties, near, *neighbours, specials, bits])
    return np.concatenate([values, -values])


EDGES = float32_edges()


@pytest.mark.parametrize("values, bits", [
    (EDGES, False),
    (EDGES[:10_000].reshape(1_000, 10), False),  # a list column: a list per row
    (np.random.default_rng(1).standard_normal(5_000).astype(np.float16), False),
    (np.array([2.675, 0.00005, 1e300, -0.0, np.nan, np.inf, 1.0]), False),  # float64: value by value
    (np.array([[True, False], [False, True]]), True),
    (np.array([True, False, True]), False),
    (np.array([-128, 0, 127], dtype=np.int8), False),
    (np.array([[2**63 - 1, -2**63]], dtype=np.int64), False),
    (np.array([2**64 - 1, 0], dtype=np.uint64), False),
    (pd.Series([0.5, np.nan, np.inf, 0.123456], dtype=np.float32), False),
    (pd.Series([True, False]), True),
    (pd.Series(["more <b>comedy</b>", None, "x"], dtype="str"), False),
    (pd.Series([1, None, 3], dtype="Int64"), False),
    (pd.Series([True, None, False], dtype=pd.ArrowDtype(pa.bool_())), True),
    (pd.Series([["a", None], None], dtype=pd.ArrowDtype(pa.list_(pa.string()))), False),
], ids=["float32", "float32-2d", "float16", "float64", "bool-bits-2d", "bool", "int8", "int64-2d", "uint64",
        "series-float32", "series-bool-bits", "series-str", "series-Int64", "series-arrow-bool", "series-arrow-list"])
def test_a_column_made_at_once_equals_the_column_made_value_by_value(values, bits):
    fast, slow = _plain_column(values, bits), value_by_value(values, bits)
    # JSON tells 1 from 1.0 and from true, and 0.0 from -0.0: the page's bytes are the same.
    assert json.dumps(fast, allow_nan=False) == json.dumps(slow, allow_nan=False)
    assert fast == slow


def test_float32_rounding_matches_python_round_on_the_ties():
    """Odd multiples of 1/32 are exact ties at the 4th decimal: both round half to even."""
    assert _plain_column(np.array([0.03125, 0.09375, 0.15625, 2.5e-4], dtype=np.float32)) == [
        round(0.03125, 4), round(0.09375, 4), round(0.15625, 4), round(float(np.float32(2.5e-4)), 4)]
    assert _plain_column(np.array([0.03125, 0.09375, 0.15625], dtype=np.float32)) == [0.0312, 0.0938, 0.1562]


def tiny_log() -> pd.DataFrame:
    """Four steps of three users, out of order; user 2 is beyond max_users=2."""
    log = EpisodeLog()
    log.append({
        "agent": "random", "seed": 7, "user": np.array([1, 0, 0, 2]), "episode": 0,
        "episode_seed": np.array([2**63 - 1, 2**53 + 1, 2**53 + 1, 5]), "step": np.array([0, 0, 1, 0]),
        "rollout_step": np.array([0, 0, 1, 0]), "session": np.array([0, 0, 1, 0]), "session_step": 0,
        "slate": np.array([[5, 2], [0, 5], [2, 0], [1, 3]]),
        "examined": np.array([[1, 1], [1, 0], [1, 1], [1, 1]], bool),
        "clicked": np.array([[1, 0], [0, 0], [1, 1], [0, 0]], bool),
        "watch_fraction": np.array([[0.123456, 1.0], [0.0, 0.03125], [0.99996, 0.5], [0, 0]], np.float32),
        "liked": np.array([[1, 0], [0, 0], [1, 0], [0, 0]], bool),
        "rating": np.array([[4, 0], [0, 0], [5, 1], [0, 0]], np.int8),
        "reward": np.array([1.0, 0.0, 2.5, 0.0], np.float32),
        "satisfaction": np.array([0.5, 1 / 3, 0.7, 0.1], np.float32),
        "left_session": np.array([1, 1, 0, 0], bool), "returned": np.array([0, 1, 0, 0], bool),
        "churned": np.array([1, 0, 0, 0], bool), "return_gap": np.array([np.inf, 3.25, 0.0, 0.0], np.float32),
        "terminated": np.array([1, 0, 0, 0], bool), "truncated": np.array([0, 0, 1, 0], bool),
        "instruction_text": np.array([None, "more <b>comedy</b> & less drama", None, None], object),
        "instruction_in_force": np.array([0, 1, 1, 0], bool),
        "compliance": np.ma.masked_array(np.array([0, 0.25, 0.123449, 0], np.float32), mask=[1, 0, 0, 1]),
        "mindset_text": np.array(["bored", None, None, None], object),
    })
    return log.to_pandas()


def test_the_page_data_of_a_tiny_log_is_exactly_this():
    catalog = SimpleNamespace(titles=["Alien", "B", "Casablanca & <Co>", "D", "E", "Fargo"],
                              genres=torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]]),
                              genre_names=["Comedy", "Drama", "Sci-Fi"])
    payload = viewer_payload(tiny_log(), catalog, title="tiny", max_users=2, note=None)
    user_0 = {
        "step": [0, 1], "rollout_step": [0, 1], "session": [0, 1], "session_step": [0, 0], "reward": [0, 2.5],
        "satisfaction": [0.3333, 0.7], "left_session": [1, 0], "returned": [1, 0], "churned": [0, 0],
        "return_gap": [3.25, 0], "terminated": [0, 0], "truncated": [0, 1], "instruction_in_force": [1, 1],
        "compliance": [0.25, 0.1234], "instruction_text": ["more <b>comedy</b> & less drama", None],
        "mindset_text": [None, None], "slate": [[0, 5], [2, 0]], "examined": [[1, 0], [1, 1]],
        "clicked": [[0, 0], [1, 1]], "watch_fraction": [[0, 0.0312], [1, 0.5]], "liked": [[0, 0], [1, 0]],
        "rating": [[0, 0], [5, 1]]}
    user_1 = {
        "step": [0], "rollout_step": [0], "session": [0], "session_step": [0], "reward": [1], "satisfaction": [0.5],
        "left_session": [1], "returned": [0], "churned": [1], "return_gap": ["inf"], "terminated": [1],
        "truncated": [0], "instruction_in_force": [0], "compliance": [None], "instruction_text": [None],
        "mindset_text": ["bored"], "slate": [[5, 2]], "examined": [[1, 1]], "clicked": [[1, 0]],
        "watch_fraction": [[0.1235, 1]], "liked": [[1, 0]], "rating": [[4, 0]]}
    expected = {
        "title": "tiny", "note": None, "agents": ["random"], "seeds": [7],
        "items": {"0": {"title": "Alien", "genres": ["Sci-Fi"]},
                  "2": {"title": "Casablanca & <Co>", "genres": ["Drama"]},
                  "5": {"title": "Fargo", "genres": ["Comedy", "Drama"]}},
        "episodes": [
            {"agent": "random", "seed": 7, "user": 0, "episode": 0, "episode_seed": "9007199254740993",
             "columns": user_0},
            {"agent": "random", "seed": 7, "user": 1, "episode": 0, "episode_seed": "9223372036854775807",
             "columns": user_1}],
        "extra_columns": ["mindset_text"],
        "booleans": ["left_session", "returned", "churned", "terminated", "truncated", "instruction_in_force",
                     "examined", "clicked", "liked"],
    }
    # Equal as JSON text, keys in order: the page is this text.
    assert json.dumps(payload, allow_nan=False) == json.dumps(expected)
    assert all(type(a) is type(b) for a, b in zip(payload["episodes"][1]["columns"]["watch_fraction"][0], [0.1, 1]))


def test_the_page_escapes_every_character_that_could_end_its_script():
    html = render_page({"title": "a</script><!--b&c>d\u2028e\u2029f", "episodes": []})
    data = '{"title":"a\\u003c/script\\u003e\\u003c!--b\\u0026c\\u003ed\\u2028e\\u2029f","episodes":[]}'
    assert f'<script id="payload" type="application/json">{data}</script>' in html
    assert json.loads(data)["title"] == "a</script><!--b&c>d\u2028e\u2029f"
