"""The whole path on one machine, through real Metaflow runs."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from conftest import FLOW, ROOT, flow_env, run_flow, small_spec, write_spec

import shardfit
from shardfit.errors import IntegrityError


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small run through metaflow.Runner, shared by the assertions below."""
    from metaflow import Runner

    tmp = tmp_path_factory.mktemp("flow")
    spec = small_spec(tmp, **{"data.partitioning": "stratified"})
    path = write_spec(tmp, spec)
    with Runner(str(FLOW), env=flow_env(), cwd=str(tmp), show_output=False, config=[("spec", str(path))]).run() as running:
        assert running.status == "successful", running.stdout + running.stderr
        return running.run, tmp, spec


def test_client_api_returns_the_merged_model(finished):
    run, tmp, spec = finished
    from metaflow import Flow, namespace

    namespace(None)
    latest = Flow("DistributedTrainingFlow").latest_successful_run
    assert latest.id == run.id
    model = latest.data.model
    assert type(model).__name__ == "RandomForestClassifier"
    assert len(model.estimators_) == 3 * 10
    assert list(model.classes_) == [0, 1, 2]
    metrics = latest.data.metrics
    assert set(metrics["merged"]) == {"accuracy"}
    assert 0.5 < metrics["merged"]["accuracy"] <= 1.0
    assert metrics["n_estimators"] == 30
    assert len(metrics["partitions"]) == 3
    for rec in metrics["partitions"]:
        assert {"rows", "fit_seconds", "peak_rss_mb", "accuracy"} <= set(rec)
        assert rec["rows"] > 0 and rec["peak_rss_mb"] > 10
    assert latest.data.model_uri.startswith(str(tmp / "models" / "tiny-rf"))
    assert latest.data.spec["name"] == "tiny-rf"
    assert latest.data.spec["data"]["partitioning"] == "stratified"


def test_every_worker_gets_its_own_seed(finished):
    run, _, _ = finished
    seeds = [r["random_state"] for r in run.data.metrics["partitions"]]
    assert len(set(seeds)) == 3
    trees = run.data.model.estimators_
    first = [t.tree_.node_count for t in trees[:10]]
    second = [t.tree_.node_count for t in trees[10:20]]
    assert first != second


def test_merged_accuracy_matches_a_fresh_evaluation(finished):
    """The recorded metric is what the model really scores on the holdout rows."""
    run, _, spec = finished
    from sklearn.datasets import make_classification

    X, y = make_classification(**spec["data"]["params"])
    acc = run.data.model.score(X.astype(np.float32), y)
    assert abs(acc - run.data.metrics["merged"]["accuracy"]) < 0.15


def test_published_version_has_manifest_and_latest(finished):
    run, tmp, _ = finished
    root = tmp / "models" / "tiny-rf"
    latest = json.loads((root / "latest.json").read_text())
    assert latest["version"] == run.data.version
    assert run.id in latest["version"]
    manifest = json.loads((root / latest["version"] / "manifest.json").read_text())
    blob = (root / latest["version"] / "model.joblib").read_bytes()
    assert manifest["sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["size"] == len(blob)
    assert manifest["pathspec"] == f"DistributedTrainingFlow/{run.id}"
    assert manifest["spec"]["name"] == "tiny-rf"
    assert {"scikit-learn", "numpy", "metaflow", "python"} <= set(manifest["libraries"])
    assert manifest["format"] == "joblib" and manifest["created_at"]
    assert manifest["metrics"]["merged"]["accuracy"] == run.data.metrics["merged"]["accuracy"]
    assert "model:tiny-rf" in run.tags and f"version:{run.data.version}" in run.tags


def test_partitions_are_removed_after_success(finished):
    _, tmp, _ = finished
    runs = tmp / "models" / "_runs"
    assert not any(p.suffix == ".npy" for p in runs.rglob("*")) if runs.exists() else True


def test_load_model_checks_sha256(finished, tmp_path):
    run, tmp, _ = finished
    copy = tmp_path / "models"
    shutil.copytree(tmp / "models", copy)
    model = shardfit.load_model(str(copy), "tiny-rf")
    X = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    assert np.array_equal(model.predict(X), run.data.model.predict(X))
    target = copy / "tiny-rf" / run.data.version / "model.joblib"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match manifest"):
        shardfit.load_model(str(copy), "tiny-rf")


def test_operator_cr_on_a_local_bucket(tmp_path):
    """The operator's CR, unchanged but for a local bucket, laid out the operator's way."""
    import pickle

    from sklearn.datasets import make_moons

    bucket = tmp_path / "bucket"
    (bucket / "data").mkdir(parents=True)
    X, y = make_moons(n_samples=3000, noise=0.3, random_state=666)
    for n, idx in enumerate(np.array_split(np.arange(len(y)), 3)):
        name = "training" if n == 1 else "train"  # the article says training_, the code train_: both work
        (bucket / "data" / f"{name}_{n}.pkl").write_bytes(pickle.dumps(X[idx]))
        (bucket / "data" / f"label_{n}.pkl").write_bytes(pickle.dumps(y[idx]))
    shutil.copy(ROOT / "specs" / "merge_list_rfs.py", bucket / "merge_list_rfs.py")
    cr = (ROOT / "specs" / "operator-cr.yaml").read_text()
    cr = cr.replace("baseGcsBucket: distributed-randomforest", f"baseGcsBucket: {bucket}")
    cr = cr.replace("n_estimators=500", "n_estimators=20")
    path = tmp_path / "cr.yaml"
    path.write_text(cr)
    result = run_flow(["run", "--spec", str(path)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    model = shardfit.load_model(str(bucket / "models"), "dt-test1")
    assert len(model.estimators_) == 60
    Xt, yt = make_moons(n_samples=2000, noise=0.3, random_state=1)
    assert model.score(Xt, yt) > 0.85
    manifest = shardfit.read_manifest(str(bucket / "models"), "dt-test1")
    assert manifest["merger"]["origin"] == str(bucket / "merge_list_rfs.py")
    assert manifest["merger"]["function"] == "combine_rfs"
