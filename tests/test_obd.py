"""Open Bandit Dataset: fetching obp's sdist into the cache, the loader, the BTS policy, the study.

The real files are fetched once per module (the obp sdist is about 1.3 MB); tests of
failures replace pip with a fake that serves a hand-made sdist, so they need no network.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data_support
from data_support import fetched_cache
from recoworld.data.fetch import OPEN_BANDIT, FetchError, fetch, main
from recoworld.data.obd import (
    CAMPAIGNS,
    bts_distribution,
    load_bts_prior,
    load_open_bandit,
    obd_study,
)
from recoworld.logs import list_column
from recoworld.ope import SlateFeedback, SlateIndependentIPS, SlateIPS, SlateRewardInteractionIPS

N_ITEMS = {"all": 80, "men": 34, "women": 46}


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    return fetched_cache(tmp_path_factory, "open-bandit", "the Open Bandit Dataset")


@pytest.fixture(scope="module")
def obd(real_cache) -> Path:
    return real_cache / "open-bandit"


@pytest.fixture(scope="module")
def study(real_cache):
    return obd_study(cache_dir=real_cache, campaign="all")


def fake_pip(monkeypatch, files: dict[str, bytes] | None = None, returncode: int = 0, stderr: str = ""):
    """Replace pip with a fake that drops an obp sdist holding ``files`` (archive paths
    below ``obp-0.5.7/``) into its ``-d`` folder."""
    def write_sdist(dest: Path) -> None:
        with tarfile.open(dest / "obp-0.5.7.tar.gz", "w:gz") as sdist:
            for name, data in (files or {}).items():
                info = tarfile.TarInfo(f"obp-0.5.7/{name}")
                info.size = len(data)
                sdist.addfile(info, io.BytesIO(data))

    return data_support.fake_pip(monkeypatch, write_sdist, returncode, stderr)


def sdist_files(obd: Path) -> dict[str, bytes]:
    """The cached files under their paths in obp's sdist."""
    files = {f"obp/dataset/obd/{p.relative_to(obd)}": p.read_bytes() for p in obd.rglob("*.csv")}
    files["obp/policy/conf/prior_bts.yaml"] = (obd / "prior_bts.yaml").read_bytes()
    return files


def copy_layout(obd: Path, dest: Path) -> Path:
    shutil.copytree(obd, dest)
    return dest


# --- fetch and the cache -------------------------------------------------------------------

def test_fetch_publishes_the_obd_layout_and_the_priors(real_cache, obd):
    assert sorted(p.name for p in real_cache.iterdir()) == [".open-bandit.lock", "open-bandit"]
    found = sorted(str(p.relative_to(obd)) for p in obd.rglob("*") if p.is_file())
    expected = sorted([f"{policy}/{c}/{name}" for policy in ("random", "bts") for c in CAMPAIGNS
                       for name in (f"{c}.csv", "item_context.csv")] + ["prior_bts.yaml"])
    assert found == expected


def test_fetch_downloads_the_sdist_without_dependencies(obd, tmp_path, monkeypatch, capsys):
    calls = fake_pip(monkeypatch, sdist_files(obd))
    assert fetch("open-bandit", cache_dir=tmp_path) == tmp_path / "open-bandit"
    [command] = calls
    assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
    # obp's sdist says Requires-Python < 3.11; only its files are read, nothing is installed.
    assert "--no-binary=:all:" in command and "--ignore-requires-python" in command
    assert command[-1] == "obp==0.5.7"
    assert f"open-bandit: 13 files verified, saved in {tmp_path / 'open-bandit'}" in capsys.readouterr().err
    assert (tmp_path / "open-bandit" / "bts" / "men" / "item_context.csv").read_bytes() == (
        obd / "bts" / "men" / "item_context.csv").read_bytes()


def test_second_fetch_and_the_loaders_use_the_cache_without_network(real_cache, monkeypatch):
    calls = fake_pip(monkeypatch, {})
    monkeypatch.setenv("RECOWORLD_CACHE", str(real_cache))
    assert fetch("open-bandit", progress=False) == real_cache / "open-bandit"
    assert len(load_open_bandit("bts", "men").log) == 10_000
    assert load_bts_prior("men")[0].shape == (34,)
    assert calls == []


def test_failed_verification_leaves_nothing_in_the_cache(obd, tmp_path, monkeypatch):
    files = sdist_files(obd)
    name = "obp/dataset/obd/random/men/men.csv"
    # A download cut short: the last impression is missing.
    files[name] = files[name].rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
    fake_pip(monkeypatch, files)
    with pytest.raises(FetchError) as err:
        fetch("open-bandit", cache_dir=tmp_path, progress=False)
    assert str(err.value) == (
        "open-bandit failed verification: random/men/men.csv has 9,999 impressions, expected 10,000; "
        "nothing was saved to the cache"
    )
    assert [p.name for p in tmp_path.iterdir()] == [".open-bandit.lock"], "only the lock file, which locks nothing now"


def test_sdist_without_the_priors_is_reported(obd, tmp_path, monkeypatch):
    files = sdist_files(obd)
    del files["obp/policy/conf/prior_bts.yaml"]
    fake_pip(monkeypatch, files)
    with pytest.raises(FetchError) as err:
        fetch("open-bandit", cache_dir=tmp_path, progress=False)
    assert str(err.value) == "obp-0.5.7.tar.gz has no obp/policy/conf/prior_bts.yaml; pin a release that carries it"
    assert [p.name for p in tmp_path.iterdir()] == [".open-bandit.lock"], "only the lock file, which locks nothing now"


def test_pip_failure_says_how_to_get_the_files_by_hand(tmp_path, monkeypatch):
    fake_pip(monkeypatch, returncode=1, stderr="ERROR: No matching distribution found for obp==0.5.7\n")
    with pytest.raises(FetchError) as err:
        fetch("open-bandit", cache_dir=tmp_path, progress=False)
    assert str(err.value) == (
        "pip could not download obp==0.5.7 (exit status 1):\n"
        "ERROR: No matching distribution found for obp==0.5.7\n"
        f"Fetching 'open-bandit' needs access to PyPI (or to the index set in PIP_INDEX_URL). Without it, "
        f"{OPEN_BANDIT.manual.format(folder=tmp_path / 'open-bandit')}."
    )
    assert [p.name for p in tmp_path.iterdir()] == [".open-bandit.lock"], "only the lock file, which locks nothing now"


def test_cli_fetches_open_bandit(real_cache, monkeypatch, capsys):
    fake_pip(monkeypatch, {})
    assert main(["fetch", "open-bandit", "--cache-dir", str(real_cache), "--quiet"]) == 0
    assert capsys.readouterr().out == f"{real_cache / 'open-bandit'}\n"


# --- the loader ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["random", "bts"])
@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_policy_and_campaign_loads(obd, policy, campaign):
    data = load_open_bandit(policy, campaign, obd)
    n_items = N_ITEMS[campaign]
    assert (data.behavior_policy, data.campaign, data.n_items, len(data.log)) == (policy, campaign, n_items, 10_000)
    assert list(data.items.columns) == ["item_id", *(f"item_feature_{j}" for j in range(4))]
    assert (data.items["item_id"] == np.arange(n_items)).all()
    slate = list_column(data.log, "slate")
    assert slate.shape == (10_000, 1) and slate.min() >= 0 and slate.max() < n_items
    assert set(data.log["position"]) == {0, 1, 2}
    assert data.log["propensity"].isna().all() and data.log["cascade_propensity"].isna().all()
    assert list_column(data.log, "user_item_affinity").shape == (10_000, n_items)
    assert data.log["timestamp"].is_monotonic_increasing
    pscore = list_column(data.log, "position_propensity")[:, 0]
    if policy == "random":  # uniform: every item equally likely at every position
        np.testing.assert_allclose(pscore, 1 / n_items, rtol=1e-3)
    assert ((pscore > 0) & (pscore <= 1)).all()


def test_rows_map_to_the_log_schema(obd):
    data = load_open_bandit("random", "all", obd)
    assert list(data.log.columns) == [
        "agent", "slate", "position", "propensity", "position_propensity", "cascade_propensity", "clicked",
        "reward", "user_item_affinity", "timestamp", "user_feature_0", "user_feature_1", "user_feature_2",
        "user_feature_3",
    ]
    first = data.log.iloc[0]
    # The file's first row: 2019-11-24 00:00:34.762830+00:00, item 14 at position 3, no click, 0.0125.
    assert (first["agent"], list(first["slate"]), first["position"]) == ("random", [14], 2)
    assert list(first["position_propensity"]) == [0.0125] and list(first["clicked"]) == [False]
    assert first["reward"] == 0.0
    assert first["timestamp"] == pd.Timestamp("2019-11-24 00:00:34.762830", tz="UTC")
    assert first["user_feature_0"] == "81ce123cbb5bd8ce818f60fb3586bba5"
    assert data.log["reward"].sum() == 38
    assert (list_column(data.log, "clicked")[:, 0] == (data.log["reward"] == 1)).all()
    assert data.items.loc[0, "item_feature_0"] == pytest.approx(-0.49917162609493676)
    assert load_open_bandit("bts", "all", obd).log["reward"].sum() == 42


def test_feedback_is_the_impressions(obd):
    data = load_open_bandit("bts", "women", obd)
    feedback = data.feedback()
    assert feedback.n_rounds == 10_000
    np.testing.assert_array_equal(feedback.action, list_column(data.log, "slate")[:, 0])
    np.testing.assert_array_equal(feedback.position, data.log["position"])
    np.testing.assert_array_equal(feedback.pscore, list_column(data.log, "position_propensity")[:, 0])
    np.testing.assert_array_equal(feedback.reward, data.log["reward"])


def test_a_local_folder_in_obd_layout_loads_like_the_cache(obd, tmp_path):
    folder = copy_layout(obd, tmp_path / "open_bandit_dataset")
    local, cached = load_open_bandit("bts", "men", folder), load_open_bandit("bts", "men", obd)
    pd.testing.assert_frame_equal(local.log, cached.log)
    pd.testing.assert_frame_equal(local.items, cached.items)
    np.testing.assert_array_equal(load_bts_prior("men", folder / "prior_bts.yaml")[1], load_bts_prior("men", obd)[1])


def test_missing_file_names_the_layout(obd, tmp_path):
    folder = copy_layout(obd, tmp_path / "obd")
    (folder / "random" / "women" / "item_context.csv").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_open_bandit("random", "women", folder)
    assert str(err.value) == (
        f"{folder / 'random' / 'women' / 'item_context.csv'} does not exist; the Open Bandit Dataset layout is "
        "{random,bts}/{all,men,women}/<campaign>.csv with item_context.csv beside each (recoworld data fetch "
        "open-bandit, or the folder obp/dataset/obd of obp's source distribution)"
    )
    with pytest.raises(FileNotFoundError) as err:
        load_bts_prior("all", tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'prior_bts.yaml'} does not exist; it ships in obp's source distribution as "
        "obp/policy/conf/prior_bts.yaml (recoworld data fetch open-bandit)"
    )


def corrupt(obd: Path, tmp_path: Path, relative: str, edit) -> Path:
    folder = copy_layout(obd, tmp_path / "obd")
    file = folder / relative
    file.write_text(edit(file.read_text()))
    return folder


@pytest.mark.parametrize("policy, campaign, edit, value, row", [
    # A value out of range: the first impression with propensity 0.0125 in the bts logs.
    ("bts", "all", lambda text: text.replace(",0.0125,", ",1.25,", 1), "'1.25'", 78),
    # A cut row: the last impression lost everything after its click.
    ("random", "men", lambda text: text.rstrip("\n").rsplit(",", 39)[0] + "\n", "''", 9_999),
])
def test_damaged_values_are_named_with_file_column_and_row(obd, tmp_path, policy, campaign, edit, value, row):
    relative = f"{policy}/{campaign}/{campaign}.csv"
    folder = corrupt(obd, tmp_path, relative, edit)
    with pytest.raises(ValueError) as err:
        load_open_bandit(policy, campaign, folder)
    assert str(err.value) == (
        f"{folder / relative}: propensity_score is {value} at row {row}, but it must be a "
        "probability in (0, 1]; the file is damaged, fetch it again"
    )


def test_missing_column_and_unknown_items_are_reported(obd, tmp_path):
    folder = corrupt(obd, tmp_path, "random/all/all.csv", lambda text: text.replace(",click,", ",clicks,", 1))
    with pytest.raises(ValueError) as err:
        load_open_bandit("random", "all", folder)
    assert str(err.value) == (
        f"{folder / 'random' / 'all' / 'all.csv'} lacks column(s) click; its columns are timestamp, item_id, "
        "position, clicks, propensity_score, user_feature_0, user_feature_1, user_feature_2, ..."
    )
    shutil.copy(obd / "random" / "men" / "item_context.csv", folder / "random" / "all" / "item_context.csv")
    (folder / "random" / "all" / "all.csv").write_bytes((obd / "random" / "all" / "all.csv").read_bytes())
    with pytest.raises(ValueError, match=r"all\.csv: item_id is '\d+' at row \d+, but it must be an item id in 0\.\.33"):
        load_open_bandit("random", "all", folder)


def test_unknown_policy_and_campaign(obd):
    with pytest.raises(ValueError) as err:
        load_open_bandit("egreedy", "all", obd)
    assert str(err.value) == "behavior_policy 'egreedy' is not one of ('random', 'bts')"
    with pytest.raises(ValueError) as err:
        load_bts_prior("kids", obd)
    assert str(err.value) == "campaign 'kids' is not one of ('all', 'men', 'women')"


def test_priors_match_the_campaigns(obd):
    for campaign, n_items in N_ITEMS.items():
        alpha, beta = load_bts_prior(campaign, obd)
        assert alpha.shape == beta.shape == (n_items,)
        assert (alpha > 0).all() and (beta > 0).all()
    alpha, beta = load_bts_prior("all", obd)
    assert (alpha[0], beta[0]) == (47.0, 12198.0)


def test_prior_file_without_the_campaign(tmp_path):
    (tmp_path / "prior_bts.yaml").write_text("all:\n  alpha: [1.0, 2.0]\n  beta: [3.0, 4.0]\n")
    with pytest.raises(ValueError) as err:
        load_bts_prior("men", tmp_path)
    assert str(err.value) == f"{tmp_path / 'prior_bts.yaml'} has no priors for campaign 'men'; it lists ['all']"


# --- the BTS slate distribution -----------------------------------------------------------

def test_bts_distribution_sums_to_one_and_is_reproducible(obd):
    alpha, beta = load_bts_prior("all", obd)
    dist = bts_distribution(alpha, beta, n_mc=20_000, seed=3)
    assert dist.probability.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(dist.position_marginals.sum(axis=0), 1.0)
    assert len(np.unique(dist.slates, axis=0)) == len(dist.slates)
    assert all(len(set(s)) == 3 for s in dist.slates[:1000].tolist())  # ranked, no repeats
    again = bts_distribution(alpha, beta, n_mc=20_000, seed=3)
    np.testing.assert_array_equal(again.slates, dist.slates)
    np.testing.assert_array_equal(again.probability, dist.probability)
    other = bts_distribution(alpha, beta, n_mc=20_000, seed=4)
    assert not np.array_equal(other.position_marginals, dist.position_marginals)


def test_bts_distribution_matches_the_exact_probability():
    # X ~ Beta(1, 1), Y ~ Beta(2, 1): P(X > Y) = int_0^1 2y (1 - y) dy = 1/3.
    dist = bts_distribution([1.0, 2.0], [1.0, 1.0], slate_length=1, n_mc=40_000, seed=0)
    p = dist.position_marginals[0, 0]
    assert abs(p - 1 / 3) < 4 * dist.standard_error[0, 0]
    assert dist.standard_error[0, 0] == pytest.approx(np.sqrt(p * (1 - p) / 40_000))


def test_bts_distribution_feeds_the_estimators(obd):
    dist = bts_distribution(*load_bts_prior("men", obd), n_mc=10_000, seed=0)
    action_dist = dist.action_dist(5)
    assert action_dist.shape == (5, 34, 3)
    np.testing.assert_allclose(action_dist.sum(axis=1), 1.0)
    # Slates drawn by the policy, scored with its own probabilities: every weight is 1,
    # so standard, independent and cascade IPS all return the mean reward.
    slates = dist.slates[np.argsort(-dist.probability)[:50]]
    pscores = dist.evaluation_pscores(slates)
    np.testing.assert_allclose(pscores["evaluation_pscore"], np.sort(dist.probability)[::-1][:50])
    np.testing.assert_allclose(pscores["evaluation_pscore_cascade"][:, -1], pscores["evaluation_pscore"])
    reward = np.random.default_rng(0).binomial(1, 0.3, size=(50, 3)).astype(float)
    feedback = SlateFeedback(reward, pscore=pscores["evaluation_pscore"],
                             pscore_item_position=pscores["evaluation_pscore_item_position"],
                             pscore_cascade=pscores["evaluation_pscore_cascade"])
    for estimator in (SlateIPS(), SlateIndependentIPS(), SlateRewardInteractionIPS()):
        assert estimator.estimate_policy_value(feedback, **pscores) == pytest.approx(reward.sum(axis=1).mean())
    assert dist.evaluation_pscores([[0, 0, 1]])["evaluation_pscore"][0] == 0.0  # never drawn: a repeat


def test_slate_of_one_has_one_kind_of_propensity():
    dist = bts_distribution([2.0, 3.0, 4.0], [5.0, 5.0, 5.0], slate_length=1, n_mc=5_000, seed=1)
    pscores = dist.evaluation_pscores([[0], [1], [2]])
    expected = dist.position_marginals[:, 0]
    for key in ("evaluation_pscore", "evaluation_pscore_item_position", "evaluation_pscore_cascade"):
        np.testing.assert_allclose(np.ravel(pscores[key]), expected)


# --- the study ----------------------------------------------------------------------------

def test_study_estimates_the_bts_click_rate_from_the_random_logs(study):
    rows = {row["estimator"]: row for row in study["rows"]}
    assert list(rows) == ["IPS", "SNIPS", "DM", "DR", "SNDR",
                          "IPS (position 0)", "IPS (position 1)", "IPS (position 2)"]
    assert (study["n_logged"], study["n_on_policy"], study["n_mc"]) == (10_000, 10_000, 100_000)
    assert study["mc_standard_error"] < 0.5 / np.sqrt(100_000)
    truth = rows["IPS"]["on_policy"]
    assert truth == pytest.approx(42 / 10_000)  # the click rate of the bts logs
    assert rows["IPS"]["on_policy_ci_low"] < truth < rows["IPS"]["on_policy_ci_high"]
    for name in ("IPS", "SNIPS", "DM", "DR", "SNDR"):
        row = rows[name]
        assert row["on_policy"] == truth
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        # Observed with seed 0: relative errors 0.09 (IPS), 0.14 (SNIPS), 0.06 (DM), 0.14 (DR),
        # 0.15 (SNDR); about 40 clicks on each side make 0.2 a tight but fair tolerance.
        assert row["rel_error"] < 0.2
        assert row["rel_error"] == pytest.approx(abs(row["estimate"] - truth) / truth)
    for name in ("IPS", "SNIPS", "DR", "SNDR"):  # DM's interval holds its model fixed: too narrow
        assert rows[name]["ci_low"] < truth < rows[name]["ci_high"]


def test_study_per_position_rows_compare_with_the_same_position(study, obd):
    on_policy = load_open_bandit("bts", "all", obd).log
    rows = {row["estimator"]: row for row in study["rows"]}
    for k in range(3):
        row = rows[f"IPS (position {k})"]
        assert row["on_policy"] == pytest.approx(on_policy.loc[on_policy["position"] == k, "reward"].mean())
        # Each position's value lies in the overlap of the two intervals (3,300 impressions each).
        assert row["ci_low"] < row["on_policy_ci_high"] and row["on_policy_ci_low"] < row["ci_high"]
