"""The example specs run as shipped (smaller data), and the README stays true to the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_flow, write_spec

import shardfit


@pytest.mark.parametrize(
    ("spec_file", "estimator", "shrink"),
    [
        ("hgb-voting.yaml", "VotingMergedClassifier", {"max_iter": 15}),
        ("stacking.yaml", "StackedMergedClassifier", {"max_iter": 15}),
        ("moons.yaml", "RandomForestClassifier", {"n_estimators": 30}),
    ],
)
def test_example_spec_runs(spec_file: str, estimator: str, shrink: dict, tmp_path: Path):
    spec = yaml.safe_load((ROOT / "specs" / spec_file).read_text())
    spec["data"]["params"]["n_samples"] = 4000
    spec["model"]["parameters"].update(shrink)
    spec["output"] = str(tmp_path / "models")
    result = run_flow(["run", "--spec", str(write_spec(tmp_path, spec))], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = shardfit.load_model(str(tmp_path / "models"), spec["name"])
    assert type(model).__name__ == estimator
    manifest = shardfit.read_manifest(str(tmp_path / "models"), spec["name"])
    merged = manifest["metrics"]["merged"]["accuracy"]
    chance = 1 / len(model.classes_)
    assert merged > chance + 0.2
    worst = min(p["accuracy"] for p in manifest["metrics"]["partitions"])
    assert merged >= worst - 0.02  # merging must not fall below the weakest sub-model


def test_readme_lists_every_bad_input_case():
    readme = (ROOT / "README.md").read_text()
    for row in yaml.safe_load((ROOT / "tests" / "bad_inputs.yaml").read_text()):
        assert f"| {row['case']} |" in readme, row["case"]


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text()[:1500]
    assert "make run" in head and "make test" in head
