"""``recoworld merge`` over runs whose metrics come from episodes logs of different schema
versions: pooled when this RecoWorld reads those logs as one, refused when it does not."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from omegaconf import OmegaConf

from recoworld.apps import cli
from recoworld.apps.merge_writer import merge
from recoworld.logs import SCHEMA_VERSION


def versioned_run(directory, seed, value, version):
    """A finished run's metrics.json (``schema_version`` as ``recoworld run`` writes it, or none)
    and its overrides."""
    (directory / ".hydra").mkdir(parents=True)
    overrides = OmegaConf.create([f"experiment.seeds=[{seed}]"])
    (directory / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    metrics = {"agents": {"random": {"seeds": [seed], "metrics": {"return_per_episode": {"per_seed": [value]}}}}}
    if version is not None:
        metrics["schema_version"] = version
    (directory / "metrics.json").write_text(json.dumps(metrics))


def test_a_version_this_recoworld_does_not_read_is_refused_among_others(tmp_path, capsys):
    versioned_run(tmp_path / "0", 0, 1.0, SCHEMA_VERSION)
    versioned_run(tmp_path / "1", 1, 2.0, SCHEMA_VERSION)
    versioned_run(tmp_path / "2", 2, 9.0, SCHEMA_VERSION + 1)  # a newer RecoWorld's
    refusal = (f"the runs' metrics come from episodes logs of different schema versions, version {SCHEMA_VERSION} "
               f"({tmp_path / '0'}, {tmp_path / '1'}) and version {SCHEMA_VERSION + 1} ({tmp_path / '2'}), and this "
               f"RecoWorld reads versions 1, 2 only, so whether the metrics of version {SCHEMA_VERSION + 1} mean what "
               "the others' do is unknown here; merge them with the RecoWorld release that wrote version "
               f"{SCHEMA_VERSION + 1} if it reads the others, rerun those runs with this one, or merge each version's "
               "runs on its own, each with its own --out")
    with pytest.raises(ValueError, match=f"^{re.escape(refusal)}$"):
        merge([tmp_path])
    assert not list(tmp_path.glob("*sweep*"))  # nothing written, not even a temporary
    assert cli.main(["merge", str(tmp_path)]) == 1
    assert f"recoworld merge: error: {refusal}\n" in capsys.readouterr().err
    # Each version on its own merges.
    table = merge([tmp_path / "2"])
    assert table["return_per_episode"].tolist() == [9.0]


def test_versions_read_as_one_log_are_pooled_and_named(tmp_path, capsys):
    versioned_run(tmp_path / "0", 0, 1.0, 1)  # before the LLM users' words were logged
    versioned_run(tmp_path / "1", 1, 2.0, 2)
    versioned_run(tmp_path / "2", 2, 6.0, 2)
    table = merge([tmp_path])
    assert table[["seeds", "n_seeds"]].values.tolist() == [["0 1 2", 3]]
    assert table["return_per_episode"].tolist() == [3.0]
    assert (f"recoworld merge: runs of episodes schema version 1 ({tmp_path / '0'}) and version 2 ({tmp_path / '1'}, "
            f"{tmp_path / '2'}) are pooled: this RecoWorld reads them as one log of version 2 (version 1 lacks only "
            "item_reasons, mindset_text)\n") in capsys.readouterr().err


def test_runs_of_one_version_merge_as_before(tmp_path, capsys):
    for job in range(5):
        versioned_run(tmp_path / "versioned" / str(job), job, float(job), SCHEMA_VERSION)
        versioned_run(tmp_path / "unversioned" / str(job), job, float(job), None)
    merge([tmp_path / "versioned"])
    merge([tmp_path / "unversioned"])
    assert "schema" not in capsys.readouterr().err
    versioned, unversioned = (pd.read_csv(tmp_path / name / "sweep.csv") for name in ("versioned", "unversioned"))
    pd.testing.assert_frame_equal(versioned, unversioned)


def test_many_runs_of_a_version_are_named_by_their_first_three(tmp_path):
    for job in range(5):
        versioned_run(tmp_path / str(job), job, 1.0, SCHEMA_VERSION)
    versioned_run(tmp_path / "9", 9, 1.0, "0")
    named = (f"version 0 ({tmp_path / '9'}) and version {SCHEMA_VERSION} ({tmp_path / '0'}, {tmp_path / '1'}, "
             f"{tmp_path / '2'} and 2 more)")
    with pytest.raises(ValueError, match=re.escape(named)):
        merge([tmp_path])


def test_a_run_without_a_version_beside_one_this_recoworld_does_not_read_is_refused(tmp_path):
    versioned_run(tmp_path / "0", 0, 1.0, None)  # a hand-made metrics.json
    versioned_run(tmp_path / "1", 1, 9.0, 10)  # a newer RecoWorld's
    with pytest.raises(ValueError, match=re.escape(
            f"different schema versions, version 10 ({tmp_path / '1'}) and version none ({tmp_path / '0'}), ")):
        merge([tmp_path])


def test_versions_are_named_in_number_order():
    from recoworld.apps.merge_setting import pooled_versions

    with pytest.raises(ValueError, match=re.escape("schema versions, version 2 (b) and version 10 (a), ")):
        pooled_versions({"a": 10, "b": 2})
