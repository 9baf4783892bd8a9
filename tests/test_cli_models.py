"""`python -m shardfit models list|show|pull` against a local registry folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import flow_env

from shardfit import registry


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shardfit", *args], env=flow_env(), cwd=str(cwd),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, dict, dict, np.ndarray]:
    """Two versions of one model, the second one latest."""
    from sklearn.datasets import make_moons
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
    location = tmp_path / "models"
    first = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    second = RandomForestClassifier(n_estimators=5, random_state=1).fit(X, y)
    spec = {"name": "moons", "data": {"source": "sklearn.datasets:make_moons"}}
    old = registry.publish(str(location), "moons", first, metrics={"merged": {"accuracy": 0.875}}, spec=spec)
    new = registry.publish(str(location), "moons", second, metrics={"merged": {"accuracy": 0.9125}}, spec=spec)
    return location, old, new, X


def test_list_marks_latest_with_metrics_and_size(published, tmp_path):
    location, old, new, _ = published
    out = _cli("models", "list", str(location), "moons", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["VERSION", "CREATED", "METRICS", "SIZE"]
    assert len(rows) == 2
    assert rows[0].split()[0] == old["version"] and "latest" not in rows[0] and not rows[0].startswith("*")
    assert rows[1].split()[:2] == ["*", new["version"]] and rows[1].endswith("latest")
    assert "accuracy=0.8750" in rows[0] and "accuracy=0.9125" in rows[1]
    assert old["created_at"][:19] in rows[0]
    assert " KB" in rows[0] or " B" in rows[0]

    as_json = json.loads(_cli("models", "list", str(location), "moons", "--json", cwd=tmp_path).stdout)
    assert [r["version"] for r in as_json] == [old["version"], new["version"]]
    assert [r["latest"] for r in as_json] == [False, True]
    assert as_json[1]["size"] == new["size"]


def test_show_prints_the_manifest_without_spec_unless_asked(published, tmp_path):
    location, old, new, _ = published
    out = _cli("models", "show", str(location), "moons", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["version"] == new["version"]
    assert manifest["sha256"] == new["sha256"]
    assert "spec" not in manifest
    older = json.loads(_cli("models", "show", str(location), "moons", old["version"], "--spec", cwd=tmp_path).stdout)
    assert older["version"] == old["version"]
    assert older["spec"]["data"]["source"] == "sklearn.datasets:make_moons"


def test_pull_writes_the_verified_file(published, tmp_path):
    location, old, new, X = published
    work = tmp_path / "work"
    work.mkdir()
    out = _cli("models", "pull", str(location), "moons", cwd=work)  # default: the current folder
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path == work / "model.joblib"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == new["sha256"]
    assert len(joblib.load(path).estimators_) == 5

    named = _cli("models", "pull", str(location), "moons", old["version"], "--dest", str(work / "old.joblib"),
                 cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert Path(named.stdout.strip()) == work / "old.joblib"
    old_model = joblib.load(work / "old.joblib")
    assert len(old_model.estimators_) == 3
    assert old_model.predict(X).shape == (len(X),)


def test_pull_refuses_a_tampered_model(published, tmp_path):
    location, _, new, _ = published
    model_file = location / "moons" / new["version"] / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 catches it
    model_file.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    out = _cli("models", "pull", str(location), "moons", "--dest", str(dest), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("shardfit: error: ") and "does not match manifest" in lines[0]
    assert str(model_file) in lines[0]
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (["list", "{loc}", "nope"], "no published version of 'nope'"),
    (["show", "{loc}", "moons", "20000101T000000000000Z"], "no such version"),
    (["pull", "{loc}", "moons", "--dest", "{tmp}/missing/dir/model.joblib"], "does not exist"),
])
def test_errors_are_one_line_and_exit_2(published, tmp_path, args, needle):
    location = published[0]
    out = _cli("models", *[a.format(loc=location, tmp=tmp_path) for a in args], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("shardfit: error: "), out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_credentials_is_one_line_with_the_adc_options(tmp_path):
    """No ADC anywhere: a hint naming the three ways to get one, not a google-auth traceback."""
    env = flow_env(HOME=str(tmp_path), GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
    for key in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "CLOUDSDK_CONFIG"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-m", "shardfit", "models", "list", "gs://no-such-bucket/models", "m"],
                         env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("shardfit: error: GCS: no Application Default Credentials")
    for hint in ("GOOGLE_APPLICATION_CREDENTIALS", "gcloud auth application-default login", "Workload Identity"):
        assert hint in out.stderr
