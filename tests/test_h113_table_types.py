"""Cells of a type the layout does not read (true/false where stars or times go, bytes,
lists and records where one text goes, an age beyond any person's) are read as what they
hold or refused naming the row, the column, the value and the fix, never silently turned
into another value."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recoworld.data.interactions import load_interactions

LOG = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"],
                    "timestamp": [100, 200, 300, 400], "rating": [4, 5, 3, 2]})


def refusal(path, **tables) -> str:
    with pytest.raises(ValueError) as error:
        load_interactions(path, **tables)
    return str(error.value)


@pytest.fixture
def log_csv(tmp_path):
    path = tmp_path / "log.csv"
    LOG.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------ true/false
def test_true_false_is_a_click_but_neither_stars_nor_a_time(tmp_path):
    clicks = tmp_path / "clicks.parquet"
    LOG.assign(click=[True, False, True, True]).to_parquet(clicks)
    assert load_interactions(clicks).ratings["rating"].tolist() == [4, 3, 2]
    # A like column was read as 1 star on every row; pandas reads a CSV's True as one too.
    for name, write in (("likes.parquet", pd.DataFrame.to_parquet), ("likes.csv", pd.DataFrame.to_csv)):
        path = tmp_path / name
        write(LOG.assign(rating=True), path)
        assert refusal(path) == (
            f"{path}: row 1, column 'rating': True is not a rating of 1..5 stars: the column holds true/false values; "
            "if it says whether the user chose the item, name it 'click'; if it says whether the user liked it, "
            "give each chosen row its stars 1..5, or drop the column to fit on choices alone")
    # Times were read as 1 and 0 (1970-01-01 00:00:01 and 00:00:00).
    path = tmp_path / "times.parquet"
    LOG.assign(timestamp=[True, True, False, True]).to_parquet(path)
    assert refusal(path) == (f"{path}: row 1, column 'timestamp': True is not a time: the column holds true/false "
                             "values; give when each interaction happened: a date and time, or Unix seconds")


# ------------------------------------------------------------------ bytes
def test_parquet_bytes_read_as_the_text_they_hold(tmp_path):
    # Ids were "b'a'", matching no other file's; now the log's ids are those of a CSV item table.
    log = tmp_path / "log.parquet"
    binary = pa.binary()
    pq.write_table(pa.table({"user": pa.array([s.encode() for s in LOG["user"]], binary),
                             "item": pa.array([s.encode() for s in LOG["item"]], binary),
                             "timestamp": pa.array([b"1970-01-01T00:01:40"] + [b"1970-01-01T00:05:00"] * 3, binary),
                             "rating": pa.array([b"4", b"5", b"3", b"2"], binary)}), log)
    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item": ["x", "y", "z"], "title": pa.array([b"Caf\xc3\xa9", None, b"Zed"], binary),
                             "genres": pa.array([[b"Drama", b"War"], [], None], pa.list_(binary))}), items)
    users = tmp_path / "users.csv"
    pd.DataFrame({"user": ["a", "b"], "gender": ["F", "M"]}).to_csv(users, index=False)
    data = load_interactions(log, items=items, users=users)
    assert data.users[["original_id", "gender"]].values.tolist() == [["a", "F"], ["b", "M"]]
    assert data.items[["original_id", "title"]].values.tolist() == [["x", "Café"], ["y", "y"], ["z", "Zed"]]
    assert data.items["genres"].tolist() == [["Drama", "War"], ["unknown"], ["unknown"]]
    assert data.ratings[["rating", "timestamp"]].values.tolist() == [[4, 100], [5, 300], [3, 300], [2, 300]]


def test_parquet_bytes_that_are_not_utf8_are_refused_naming_the_row(tmp_path, log_csv):
    log = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": pa.array([b"a", b"a", b"\xff", b"b"]), "item": list(LOG["item"]),
                             "timestamp": list(LOG["timestamp"])}), log)
    assert refusal(log) == (f"{log}: row 3, column 'user': b'\\xff' is not UTF-8 text; write the column as UTF-8 "
                            "text (a Parquet string column)")
    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item": ["x", "y", "z"], "genres": pa.array([[], None, [b"War", b"\xfe"]])}), items)
    assert refusal(log_csv, items=items) == (f"{items}: row 3, column 'genres': b'\\xfe' is not UTF-8 text; write the "
                                             "column as UTF-8 text (a Parquet string column)")


# ------------------------------------------------------------------ lists and records
def test_a_list_or_record_where_one_text_goes_is_refused(tmp_path, log_csv):
    # A title became "['Film 0']", a gender "['F']".
    items = tmp_path / "titles.parquet"
    pd.DataFrame({"item": ["x", "y", "z"], "title": [["Film 0"], ["Film 1"], ["Film 2"]]}).to_parquet(items)
    assert refusal(log_csv, items=items) == (
        f"{items}: row 1, column 'title': ['Film 0'] is not a title: an item's title is one text, and this column "
        "holds lists or records (a Parquet list or struct column); write each row's title as one text")
    users = tmp_path / "users.parquet"
    pq.write_table(pa.table({"user": ["a", "b"], "zip_code": pa.array([None, {"code": "02139"}])}), users)
    assert refusal(log_csv, users=users) == (
        f"{users}: row 2, column 'zip_code': {{'code': '02139'}} is not a zip code: a user's zip code is one text, "
        "and this column holds lists or records (a Parquet list or struct column); write each row's zip code as one "
        "text")


def test_genres_are_names_not_records(tmp_path, log_csv):
    # A record read as its key names: every item's genre was "a".
    for name, genres, shown in (("struct", [{"a": "Drama"}, {"a": "War"}, {"a": "Drama"}], "{'a': 'Drama'}"),
                                ("nested", [[["Drama"]], [], None], "[['Drama']]")):
        items = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"item": ["x", "y", "z"], "genres": pa.array(genres)}), items)
        assert refusal(log_csv, items=items) == (
            f"{items}: row 1, column 'genres': {shown} is not genre names: an item's genres are |-separated text or "
            "a list of names, not records (a Parquet struct column) or lists of lists; write each row's genres as a "
            "list of names, or as Drama|War")


# ------------------------------------------------------------------ ages
def test_an_age_beyond_any_persons_is_refused_and_an_unknown_one_is_empty(tmp_path, log_csv):
    # 1e30 overflowed int64 to -9223372036854775808; 999 (a mark for unknown) read as an age.
    for age, shown in ((1e30, "1e+30"), (999, "999")):
        users = tmp_path / "users.csv"
        pd.DataFrame({"user": ["a", "b"], "age": [age, 30]}).to_csv(users, index=False)
        assert refusal(log_csv, users=users) == (f"{users}: row 1, column 'age': {shown} is not an age in years "
                                                 "(0..150): leave the cell empty where the age is unknown")
    users = tmp_path / "ages.parquet"
    pq.write_table(pa.table({"user": ["a", "b"], "age": pa.array([True, None])}), users)
    assert refusal(log_csv, users=users) == (f"{users}: row 1, column 'age': True is not an age: the column holds "
                                             "true/false values; give each user's age in years, 0..150")
    pd.DataFrame({"user": ["a", "b"], "age": [-1, None]}).to_parquet(users)
    assert load_interactions(log_csv, users=users).users["age"].tolist() == [-1, -1]
