"""Spec parsing, defaults, the operator's CR mapping and structural errors."""

from __future__ import annotations

import pytest

from shardfit import spec as spec_mod
from shardfit.errors import SpecError

MOONS = "specs/moons.yaml"

CR = """
apiVersion: ahhuisg.com/v1
kind: DistributedTraining
metadata: {name: dt-test1}
spec:
  name: dt-test1
  baseGcsBucket: distributed-randomforest
  model:
    module: sklearn.ensemble
    class: RandomForestClassifier
    parameters: "n_estimators=500, max_leaf_nodes=16, random_state=666, n_jobs=-1, max_depth=None, criterion='gini'"
    merger: {module: merge_list_rfs, function: combine_rfs}
  image:
    master: {repository: ahhuisg/dt-master, tag: 0.0.2}
    worker: {number: 3, repository: ahhuisg/dt-worker, tag: 0.0.2}
"""


def test_moons_spec_resolves_with_defaults():
    spec = spec_mod.load(MOONS)
    assert spec["name"] == "moons-rf"
    assert spec["data"]["partitions"] == 3
    assert spec["data"]["partitioning"] == "shuffle"
    assert spec["output"] == {"location": "./models", "format": "joblib", "compress": 3}
    assert spec["model"]["tree_budget"] == "per_worker"
    assert spec["merger"]["calibration_size"] == 0.0
    assert spec["compute"]["kubernetes"] is None


def test_cr_maps_onto_a_spec():
    spec = spec_mod.loads(CR)
    assert spec["name"] == "dt-test1"
    assert spec["data"]["partitions"] == 3
    assert spec["data"]["partitioning"] == "files"
    assert spec["data"]["source"] == "gs://distributed-randomforest/data/"
    assert spec["merger"] == {
        "module": None, "path": "gs://distributed-randomforest/merge_list_rfs.py",
        "function": "combine_rfs", "params": {}, "calibration_size": 0.0,
    }
    assert spec["output"]["location"] == "gs://distributed-randomforest/models"
    assert spec["model"]["parameters"] == {
        "n_estimators": 500, "max_leaf_nodes": 16, "random_state": 666, "n_jobs": -1,
        "max_depth": None, "criterion": "gini",
    }


def test_cr_with_local_bucket_stays_local():
    spec = spec_mod.loads(CR.replace("baseGcsBucket: distributed-randomforest", "baseGcsBucket: ./bucket"))
    assert spec["data"]["source"] == "./bucket/data/"
    assert spec["merger"]["path"] == "./bucket/merge_list_rfs.py"
    assert spec["output"]["location"] == "./bucket/models"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1, b='x,y', c=None, d=(1, 2), e=gini", {"a": 1, "b": "x,y", "c": None, "d": (1, 2), "e": "gini"}),
        ("", {}),
        ("n_jobs=-1", {"n_jobs": -1}),
    ],
)
def test_parameter_string_is_parsed_safely(text, expected):
    assert spec_mod.parse_parameter_string(text) == expected


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "a=__import__('os')", "a=1+"])
def test_parameter_string_never_evaluates_code(text):
    with pytest.raises(SpecError):
        spec_mod.parse_parameter_string(text)


def test_per_worker_length_must_match_partitions():
    text = open(MOONS).read().replace(
        "  parameters: {n_estimators: 500", "  per_worker: [{max_depth: 3}]\n  parameters: {n_estimators: 500")
    with pytest.raises(SpecError, match=r"model.per_worker: has 1 entries for 3 partitions"):
        spec_mod.loads(text)


def test_output_mapping_form():
    text = open(MOONS).read().replace("output: ./models", "output: {location: ./m, format: skops}")
    assert spec_mod.loads(text)["output"]["format"] == "skops"


def test_merger_needs_exactly_one_of_module_or_path():
    text = open(MOONS).read().replace("  module: mergers.forest\n", "  module: mergers.forest\n  path: x.py\n")
    with pytest.raises(SpecError, match="exactly one of 'module' or 'path'"):
        spec_mod.loads(text)


def test_errors_are_one_line_and_name_the_source():
    with pytest.raises(SpecError) as info:
        spec_mod.loads("name: x\ndata: {source: a:b, partitons: 3}\nmodel: {module: m, class: C}\n", source="s.yaml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == "s.yaml: data.partitons: unknown field (did you mean 'partitions'?)"
