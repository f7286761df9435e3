"""``recoworld calibrate --data``: the interaction-log layout, its errors, what the fit
recovers from a log the simulator generated, and ``recoworld run`` on the world it writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from recoworld.simulators.calibrated import CalibratedWorld
from scipy import stats

from recoworld import Catalog
from recoworld.apps.calibrate.fit import main as calibrate_main
from recoworld.apps.calibrate.synthetic import simulated_dataset
from recoworld.catalog import popularity_score
from recoworld.data.interactions import load_interactions

N_USERS, N_ITEMS = 80, 150


@pytest.fixture(scope="module")
def simulated():
    catalog = Catalog.synthetic(N_ITEMS, n_genres=6, feature_dim=6, seed=2)
    return simulated_dataset(catalog, n_users=N_USERS, seed=1)


@pytest.fixture(scope="module")
def log_files(simulated, tmp_path_factory):
    """The generated ratings as a CSV log with text user ids and an item table in Parquet."""
    folder = tmp_path_factory.mktemp("log")
    r = simulated.data.ratings
    log = pd.DataFrame({"user": "u" + r["user_id"].astype(str).str.zfill(3), "item": r["item_id"] + 1000,
                        "timestamp": r["timestamp"], "rating": r["rating"]})
    log.to_csv(folder / "log.csv", index=False)
    items = simulated.data.items
    pd.DataFrame({"item": np.arange(N_ITEMS) + 1000, "title": items["title"],
                  "genres": ["|".join(g) for g in items["genres"]]}).to_parquet(folder / "items.parquet")
    return folder


@pytest.fixture(scope="module")
def world_dir(log_files):
    out = log_files / "world"
    assert calibrate_main(["--data", str(log_files / "log.csv"), "--items", str(log_files / "items.parquet"),
                           "--out", str(out), "--quiet"]) == 0
    return out


def write(tmp_path, name: str, table: pd.DataFrame):
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------ the layout
def test_log_reads_dense_ids_dates_clicks_and_first_choices(tmp_path):
    log = pd.DataFrame({"user": ["b", "a", "a", "a", "b"], "item": [10, 7, 10, 7, 3],
                        "timestamp": ["2024-01-02T00:00:00", "2024-01-01T00:00:00", "2024-01-01T00:01:00",
                                      "2024-01-03T00:00:00", "2024-01-04T00:00:00"],
                        "click": [1, 1, 1, 1, 0]})
    data = load_interactions(write(tmp_path, "log.csv", log))
    assert not data.has_ratings
    # Users a, b -> 0, 1; items 7, 10 (item 3 was only an impression) -> 0, 1.
    assert data.ratings.sort_values(["user_id", "timestamp"])[["user_id", "item_id"]].values.tolist() == \
        [[0, 0], [0, 1], [1, 1]], "the repeated choice of (a, 7) keeps the first; the impression is left out"
    assert data.ratings["timestamp"].min() == 1704067200  # 2024-01-01 in Unix seconds
    assert data.items["title"].tolist() == ["7", "10"] and data.items["genres"].tolist() == [["unknown"]] * 2
    assert data.users[["age", "gender"]].values.tolist() == [[-1, "unknown"]] * 2


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"user": [1], "item": [2]}), r"log.csv: missing column\(s\) \['timestamp'\]"),
    (pd.DataFrame({"user": [1, 1], "item": [2, 3], "timestamp": [5, "soon"]}),
     r"log.csv: row 2, column 'timestamp': 'soon' is not a time"),
    (pd.DataFrame({"user": [1, 2], "item": [2, 3], "timestamp": [5, 6], "rating": [4, 4.5]}),
     r"log.csv: row 2, column 'rating': 4.5 is not a rating of 1..5 stars"),
    (pd.DataFrame({"user": [1, None], "item": [2, 3], "timestamp": [5, 6]}),
     r"log.csv: row 2, column 'user': nan is not an id \(the cell is empty\)"),
    (pd.DataFrame({"user": [1, 2, 1], "item": [2, 3, 2], "timestamp": [5, 6, 5]}),
     r"log.csv: rows 1 and 3 repeat user 1, item 2 at the same timestamp"),
    (pd.DataFrame({"user": [1], "item": [2], "timestamp": [5], "click": [2]}),
     r"log.csv: row 1, column 'click': 2 is not a click \(0 or 1\)"),
])
def test_bad_logs_are_refused_naming_file_row_and_column(tmp_path, table, message):
    with pytest.raises(ValueError, match=message):
        load_interactions(write(tmp_path, "log.csv", table))


def test_empty_tables_unknown_items_and_formats_are_refused(tmp_path):
    log = write(tmp_path, "log.csv", pd.DataFrame({"user": [1], "item": [2], "timestamp": [5]}))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv: the interaction log has no rows"):
        load_interactions(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="items.csv: the log names item 2, which the item table does not list"):
        load_interactions(log, items=write(tmp_path, "items.csv", pd.DataFrame({"item": [9], "title": ["x"]})))
    with pytest.raises(ValueError, match=r"items2.csv: row 2, column 'item': 2 is not a new item"):
        load_interactions(log, items=write(tmp_path, "items2.csv", pd.DataFrame({"item": [2, 2]})))
    with pytest.raises(ValueError, match=r"must be CSV \(.csv\) or Parquet"):
        load_interactions(tmp_path / "log.json")
    with pytest.raises(FileNotFoundError, match="nowhere.csv: no such interaction log file"):
        load_interactions(tmp_path / "nowhere.csv")


def test_ids_are_their_text_whatever_file_types_them(tmp_path):
    """``007`` and ``7`` are two users; the integer 10 of a Parquet log (a category column
    here) is the item "10" of a Parquet item table of text; zip codes keep their zeros."""
    (tmp_path / "log.csv").write_text("user,item,timestamp\n007,10,1\n7,11,2\n007,11,3\n")
    (tmp_path / "users.csv").write_text("user,zip_code\n007,02134\n7,90210\n")
    data = load_interactions(tmp_path / "log.csv", users=tmp_path / "users.csv")
    # Both are the number 7: their text orders them.
    assert data.ratings[["user_id", "item_id"]].values.tolist() == [[0, 0], [1, 1], [0, 1]]
    assert data.users["zip_code"].tolist() == ["02134", "90210"]
    log = pd.DataFrame({"user": pd.Categorical(["b", "a", "a"]), "item": pd.Categorical([10, 9, 10]),
                        "timestamp": [1, 2, 3]})
    log.to_parquet(tmp_path / "log.parquet")
    pd.DataFrame({"item": ["10", "9", "x"], "title": ["ten", "nine", "ex"]}).to_parquet(tmp_path / "items.parquet")
    data = load_interactions(tmp_path / "log.parquet", items=tmp_path / "items.parquet")
    assert data.items["title"].tolist() == ["ten", "nine", "ex"], "ids that are not all numbers sort as text"
    assert data.ratings[["user_id", "item_id"]].values.tolist() == [[1, 0], [0, 1], [0, 0]]
    # A CSV float column writes 10.0: the item 10 of the item table.
    pd.DataFrame({"item": [10, 9], "title": ["ten", "nine"]}).to_csv(tmp_path / "items.csv", index=False)
    floats = write(tmp_path, "floats.csv", log.assign(item=[10.0, 9.0, 10.0]))
    data = load_interactions(floats, items=tmp_path / "items.csv")
    assert data.items["title"].tolist() == ["nine", "ten"] and data.ratings["item_id"].tolist() == [1, 0, 1]


def test_a_user_table_that_lists_some_users_adds_each_other_user_once(tmp_path):
    log = write(tmp_path, "log.csv", pd.DataFrame({"user": [1, 1, 2, 2, 2], "item": [10, 11, 10, 12, 13],
                                                  "timestamp": [1, 2, 3, 4, 5]}))
    data = load_interactions(log, users=write(tmp_path, "users.csv", pd.DataFrame({"user": [1], "age": [30]})))
    assert data.users[["user_id", "age"]].values.tolist() == [[0, 30], [1, -1]]


def test_unreadable_files_and_times_in_milliseconds_are_refused_saying_the_fix(tmp_path):
    (tmp_path / "ragged.csv").write_text("user,item,timestamp\n1,2,3\n1,3,4,5\n")
    with pytest.raises(ValueError, match=r"ragged.csv: the interaction log cannot be read as CSV \(.*Expected 3 "
                                         r"fields in line 3, saw 4\); every row needs the header's number"):
        load_interactions(tmp_path / "ragged.csv")
    (tmp_path / "latin1.csv").write_bytes("user,item,timestamp\nJosé,2,3\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv: the interaction log is not UTF-8 text \(.*\); save it as "
                                         "UTF-8"):
        load_interactions(tmp_path / "latin1.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"broken.parquet: the interaction log cannot be read as PARQUET"):
        load_interactions(tmp_path / "broken.parquet")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(FileNotFoundError, match="folder.csv: is a folder; give the interaction log's file"):
        load_interactions(tmp_path / "folder.csv")
    ms = write(tmp_path, "ms.csv", pd.DataFrame({"user": [1, 1], "item": [2, 3],
                                                 "timestamp": [1_700_000_000_000, 1_700_000_060_000]}))
    with pytest.raises(ValueError, match=r"ms.csv: row 1, column 'timestamp': 1700000000000 is after the year 5000 "
                                         r"in Unix seconds; the times look like milliseconds \(or finer\): divide"):
        load_interactions(ms)


def test_genres_as_lists_codes_and_text_written_lists(tmp_path):
    log = write(tmp_path, "log.csv", pd.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": [1, 2, 3]}))
    pd.DataFrame({"item": [1, 2, 3], "genres": [["War", None], [], ["Drama"]]}).to_parquet(tmp_path / "items.parquet")
    assert load_interactions(log, items=tmp_path / "items.parquet").items["genres"].tolist() == [
        ["War"], ["unknown"], ["Drama"]]
    pd.DataFrame({"item": [1, 2, 3], "genres": [4, None, 7]}).to_parquet(tmp_path / "codes.parquet")
    assert load_interactions(log, items=tmp_path / "codes.parquet").items["genres"].tolist() == [
        ["4"], ["unknown"], ["7"]]
    listed = write(tmp_path, "listed.csv", pd.DataFrame({"item": [1, 2, 3], "genres": ["Drama", "['War', 'Drama']",
                                                                                         ""]}))
    with pytest.raises(ValueError, match=r"listed.csv: row 2, column 'genres': \"\['War', 'Drama'\]\" is not "
                                         r"\|-separated genre names \(it is a Python list written as text\)"):
        load_interactions(log, items=listed)


def test_calibrate_command_reports_a_bad_log_without_a_traceback(tmp_path, capsys):
    log = write(tmp_path, "log.csv", pd.DataFrame({"user": [1], "item": [2]}))
    assert calibrate_main(["--data", str(log), "--out", str(tmp_path / "w"), "--quiet"]) == 2
    assert "log.csv: missing column(s) ['timestamp']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calibrate_main(["--data", str(log)])  # no --out: the cache's world is MovieLens-100K's


@pytest.mark.filterwarnings("ignore:.*dates without a time of day")  # the every-other-day log: warned, then refused
def test_logs_the_fit_cannot_run_on_are_refused_saying_what_is_missing(simulated, log_files, tmp_path, capsys,
                                                                       monkeypatch):
    log = pd.read_csv(log_files / "log.csv")

    def refused(table: pd.DataFrame) -> str:
        path = write(tmp_path, "small.csv", table)
        assert calibrate_main(["--data", str(path), "--out", str(tmp_path / "w"), "--quiet"]) == 2
        return capsys.readouterr().err

    assert ("the catalog has 40 items; the calibration needs at least 50: its leave fit serves slates picked from 50 "
            "distinct random candidates. List the items nobody chose in an item table (--items PATH)"
            ) in refused(log[log["item"] < 1040])
    assert (f"the validation fold is empty ({N_USERS} users, {N_USERS} interactions, at most 1 per user): the latest "
            "0.2 of each user's interactions before their held-out 0.2 validate the fit, so a user needs at least 6. "
            "Calibrate on a longer log") in refused(log.groupby("user").head(1))
    order = log.groupby("user").cumcount()
    assert (f"no user comes back within the log ({N_USERS} sessions of {N_USERS} users, one each, cut at pauses of "
            "the session gap)") in refused(log.assign(timestamp=1_000_000 + 60 * order))
    assert "followed by a return after 2 to 2 days): the shape of a user's gaps is read off the users who come " \
        "back more than once, and each of these" in refused(
        log.assign(timestamp=1_000_000 + 2 * 86_400 * order))  # one interaction every other day, on the dot
    assert calibrate_main(["--data", str(log_files / "log.csv"), "--out", str(tmp_path / "w"), "--users", "5000",
                           "--quiet"]) == 2
    assert f"--users 5000 (users=5000): the data has {N_USERS} users; choose 1..{N_USERS}" in capsys.readouterr().err
    # A model that ranks the later choices below chance gets a negative Platt scale.
    monkeypatch.setattr("recoworld.apps.calibrate.choices.platt_scaling", lambda *args: (-0.4, 0.1))
    message = refused(log)
    assert "the choice model fitted before the validation fold ranks that fold's choices at AUC" in message
    assert "(Platt scale -0.4): no better than chance, so there is no taste to calibrate" in message


@pytest.fixture(scope="module")
def refit(world_dir, log_files, tmp_path_factory):
    """A copy of ``world_dir`` fitted again with ``--force``: first on a log the fit refuses
    (40 items), then on the generated log without its rating column (choices only), which
    is the world of a log without ratings the tests below read. What each step did is
    recorded as it happened."""
    import shutil

    folder = tmp_path_factory.mktemp("refit")
    world = folder / "world"
    shutil.copytree(world_dir, world)
    before = (world / "world.json").read_bytes()
    log = pd.read_csv(log_files / "log.csv")
    small = write(folder, "small.csv", log[log["item"] < 1040])  # refused by the fit: 40 items
    refused = calibrate_main(["--data", str(small), "--out", str(world), "--force", "--quiet"])
    kept = (world / "world.json").read_bytes() == before
    clicks = write(folder, "clicks.csv", log.drop(columns="rating"))
    fitted = calibrate_main(["--data", str(clicks), "--items", str(log_files / "items.parquet"), "--out", str(world),
                             "--force", "--quiet"])
    listing = sorted(p.name for p in folder.iterdir())
    return {"world": world, "clicks": clicks, "refused": refused, "kept": kept, "fitted": fitted, "listing": listing}


def test_a_refit_with_force_replaces_the_world_only_once_the_new_one_is_written(refit, tmp_path, capsys):
    assert refit["refused"] == 2
    assert refit["kept"], "the failed fit left the old world as it was"
    assert refit["fitted"] == 0
    assert CalibratedWorld.load(refit["world"]).meta["data"]["source"]["data"].endswith("clicks.csv")
    # nothing staged (the lock's file stays, locking nothing)
    assert refit["listing"] == [".world.lock", "clicks.csv", "small.csv", "world"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(SystemExit):
        calibrate_main(["--data", str(refit["clicks"]), "--out", str(tmp_path / "notes"), "--quiet"])
    assert "holds files but no calibrated world; give a new or empty folder" in capsys.readouterr().err
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


# --------------------------------------------------------- fit and run
def test_calibration_on_a_generated_log_recovers_the_users(world_dir, simulated):
    """The log came from known users: the fitted click logits rank each user's items like
    the true ones, ratings rise with the fitted utility, and the sessions and returns are
    those the log was written with."""
    world = CalibratedWorld.load(world_dir)
    assert world.meta["data"]["source"]["kind"] == "interactions"
    assert len(world.users) == N_USERS and world.catalog.n_items == N_ITEMS
    # User "u007" is dense id 7 (ids sort as text, zero-padded); item 1000 + i is item i.
    assert world.original_user_id(world.users["user_id"].to_numpy()).tolist() == [f"u{b:03d}" for b in range(N_USERS)]
    assert world.dense_user_id("u007") == 7
    assert world.original_item_id(np.arange(N_ITEMS)).tolist() == [str(1000 + i) for i in range(N_ITEMS)]
    assert world.dense_item_id(np.arange(N_ITEMS) + 1000).tolist() == list(range(N_ITEMS))
    config = world.config
    fitted = (config.interest_weight * world.interest @ world.catalog.features.T
              + config.quality_weight * world.catalog.quality
              + torch.tensor(world.users["popularity_bias"].to_numpy(), dtype=torch.float32)[:, None]
              * popularity_score(world.catalog)).numpy()
    truth = simulated.utility.numpy()
    rho = np.array([stats.spearmanr(fitted[b], truth[b]).statistic for b in range(N_USERS)])
    assert rho.mean() > 0.65, f"mean per-user rank correlation {rho.mean():.3f}"
    # Each user's own taste is recovered, not only the items' shared appeal: ranking every
    # user's items by popularity alone correlates about 0.2 less with the truth.
    popular = world.catalog.popularity.numpy()
    rho_popular = np.array([stats.spearmanr(popular, truth[b]).statistic for b in range(N_USERS)])
    assert rho.mean() > rho_popular.mean() + 0.12, f"{rho.mean():.3f} against popularity's {rho_popular.mean():.3f}"
    assert world.meta["choice"]["validation_auc"] > 0.65
    # The simulator's ratings rise with the utility (slope 0.9 on the true one); the fit's
    # slope, on the validation fold's estimated utility, is pulled towards 0 by that
    # estimate's noise (errors in variables), so only its sign and rough size are checked.
    assert 0.25 < config.rating_slope < 1.2
    # The log's sessions are 10 ratings each, days apart as an exponential law of mean 5
    # days: the return law finds a Weibull shape near 1 (the exponential) and that mean.
    assert 0.8 < config.gap_shape < 1.4
    assert 3.5 < world.meta["returns"]["mean_gap_days"] < 6.5
    assert world.meta["leave"]["target_quantiles"] == [10.0, 10.0, 10.0]
    assert world.meta["leave"]["simulated_quantiles"][0] == 10.0  # the median session, matched


@pytest.fixture(scope="module")
def world_without_ratings(refit):
    """The generated log without its rating column (choices only), calibrated: the world the
    refit with ``--force`` wrote (one fit of that log serves both)."""
    return refit["world"]


def test_a_log_without_ratings_calibrates_its_choices_and_keeps_the_default_rating_response(world_without_ratings,
                                                                                          tmp_path):
    from recoworld.simulators.statistical import StatisticalUserConfig

    world = CalibratedWorld.load(world_without_ratings)
    default = StatisticalUserConfig()
    # Every item has the same (unknown) quality: it carries no weight, and the ratings
    # follow the simulator's default rule.
    assert world.config.quality_weight == 0.0
    assert (world.config.rating_center, world.config.rating_slope, world.config.rating_noise) == (
        default.rating_center, default.rating_slope, default.rating_noise)
    assert world.meta["choice"]["validation_auc"] > 0.65
    assert len(run_briefly(world_without_ratings, "calibrated", tmp_path / "run")) > 0


def test_the_fidelity_report_of_a_log_without_ratings_scores_no_ratings(world_without_ratings, tmp_path,
                                                                       monkeypatch):
    import json
    from functools import partial

    from recoworld.apps.fidelity import report as fidelity
    from recoworld.apps.fidelity.report import main as fidelity_main

    # Twenty bootstrap resamples instead of 200 for the split's and the sessions' intervals:
    # what the page says of a log without ratings does not depend on their number.
    monkeypatch.setattr(fidelity, "evaluate_split", partial(fidelity.evaluate_split, draws=20))
    monkeypatch.setattr(fidelity, "session_dynamics", partial(fidelity.session_dynamics, draws=20))
    assert fidelity_main(["--world", str(world_without_ratings), "--out", str(tmp_path), "--agents", "",
                          "--splits", "latest", "--quiet"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Fidelity of the calibrated statistical user (clicks.csv)")
    assert "The log has no ratings: there is nothing to score the rating response against" in report
    assert "rating RMSE |" not in report.split("## Targets")[0]  # no RMSE in the headline
    # The log's rows are interactions, not ratings, wherever the page counts them.
    assert "Held-out: each user's latest 20% of interactions (" in report
    assert "### Split: each user's latest interactions" in report
    assert "held-out ratings" not in report and "training ratings" not in report
    assert not (tmp_path / "ratings.png").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ratings"] is None
    assert metrics["data"] == {"name": "clicks.csv", "has_ratings": False, "has_genres": True}
    assert "gap_vs_mean_rating" not in metrics["sessions"]["statistics"]
    assert "gap_vs_length" in metrics["sessions"]["statistics"]


@pytest.mark.parametrize("simulator", ["calibrated", "statistical"])
def test_recoworld_run_on_the_calibrated_log(world_dir, log_files, tmp_path, simulator):
    """The run's slates join the team's item table through the world's original ids."""
    rows = run_briefly(world_dir, simulator, tmp_path)
    assert len(rows) > 0
    world = CalibratedWorld.load(world_dir)
    slates = np.stack(rows["slate"].to_numpy())
    shown = world.original_item_id(slates)
    titles = pd.read_parquet(log_files / "items.parquet").astype({"item": str}).set_index("item")["title"]
    assert [titles[item] for item in shown.ravel()] == [world.catalog.titles[i] for i in slates.ravel()]


def run_briefly(world, simulator: str, out) -> pd.DataFrame:
    """``recoworld run`` of most_popular for 3 steps on the world at ``world``: the rows it logged."""
    from recoworld.apps.run.app import main as run_main
    from recoworld.logs import read_log

    assert run_main(["world=movielens", f"world.path={world}", f"simulator={simulator}", "agent=most_popular",
                     "env.num_envs=8", "env.num_candidates=20", "env.slate_size=4", "experiment.steps=3",
                     "experiment.progress=false", "experiment.plots=false", "experiment.seeds=[0]",
                     f"hydra.run.dir={out}"]) == 0
    return read_log(out).query("agent == 'most_popular'")
