"""Model files: written with metadata beside them; a checksum mismatch or an unknown feature is refused."""

from __future__ import annotations

import json

import pytest
from arbor.config.errors import ConfigError
from arbor.strategy.model import BUILTIN_FEATURES, LogisticModel, load_model, metadata_path, save_model
from arbor.strategy.testing import make_snapshot

MODEL = LogisticModel(features=("ret_short", "rsi"), weights=(2.0, -1.0), bias=0.5, mean=(0.0, 50.0),
                      scale=(0.01, 10.0))


def saved(tmp_path, features=("ret_short", "rsi")):
    path = tmp_path / "m.json"
    save_model(path, MODEL.body(), features=features, interval="1s", version="7", created_at="2026-12-03T07:00:00+00:00")
    return path


def test_metadata_beside_the_model_round_trips(tmp_path):
    """The metadata names checksum, features in order, interval, version and created_at; loading gives the model."""
    path = saved(tmp_path)
    meta = json.loads(metadata_path(path).read_text())
    assert set(meta) >= {"checksum", "features", "interval", "version", "created_at"}
    assert meta["features"] == ["ret_short", "rsi"] and meta["interval"] == "1s" and meta["version"] == "7"
    assert LogisticModel.from_file(path, (*BUILTIN_FEATURES, "rsi")) == MODEL


def test_checksum_mismatch_is_refused(tmp_path):
    """A model file changed after its metadata was written is refused, naming the checksum."""
    path = saved(tmp_path)
    path.write_text(path.read_text().replace("0.5", "0.6"))
    with pytest.raises(ConfigError, match="checksum mismatch") as err:
        load_model(path, (*BUILTIN_FEATURES, "rsi"))
    assert err.value.key == "strategy" and str(path) in err.value.reason


def test_feature_the_runtime_does_not_produce_is_refused(tmp_path):
    """A feature neither built in nor declared is refused, naming it."""
    path = saved(tmp_path)
    with pytest.raises(ConfigError, match="does not produce: rsi"):
        load_model(path, BUILTIN_FEATURES)


def test_missing_metadata_is_refused(tmp_path):
    """A model without its metadata file is refused."""
    path = saved(tmp_path)
    metadata_path(path).unlink()
    with pytest.raises(ConfigError, match="missing file"):
        load_model(path, BUILTIN_FEATURES)


def test_probability_reads_features_in_metadata_order():
    """The model scores the snapshot's built-in features and indicators in the metadata's order."""
    values = MODEL.inputs_from(make_snapshot(ret_short=0.01, indicators={"rsi": 60.0}))
    assert values == [0.01, 60.0]
    assert MODEL.probability(values) == pytest.approx(1 / (1 + pow(2.718281828459045, -(0.5 + 2.0 - 1.0))))
    assert MODEL.inputs_from(make_snapshot()) is None  # rsi not warm yet
