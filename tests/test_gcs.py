"""GCS end to end against a real fake-gcs-server: no mock of any storage client.

Covers the registry's guarantees on GCS (create-only versions, sha256 on
load, compare-and-swap `latest`), racing publishers (threads and processes),
data read from gs:// globs, the whole flow with data, models and the Metaflow
datastore in one bucket, the operator's CR against a bucket laid out the
operator's way, and `python -m shardfit models` on gs://.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, flow_env, run_flow, small_spec, write_spec
from emulator import Emulator

from shardfit import registry
from shardfit import spec as spec_mod
from shardfit.data import Source
from shardfit.errors import IntegrityError, VersionExistsError
from shardfit.partition import load_part, partition
from shardfit.storage import GCSStorage, PreconditionFailed, expand

BUCKET = "shardfit-registry"  # registry, data and CLI tests
FLOW_BUCKET = "shardfit-flow"  # the full flow: data, models and Metaflow datastore
CR_BUCKET = "shardfit-operator"  # the operator's layout
FLOW_NAME = "DistributedTrainingFlow"

# The operator's merger, byte for byte as it shipped in merge_list_rfs.py.
OPERATOR_MERGER = (ROOT / "specs" / "merge_list_rfs.py").read_text()

# A second publisher process: waits for "go" on stdin so both start together.
PUBLISHER = """\
import sys
from shardfit import registry
location, name, *versions = sys.argv[1:]
print("ready", flush=True)
sys.stdin.readline()
for v in versions:
    registry.publish(location, name, {"version": v}, version=v, metrics={"merged": {"accuracy": 0.5}})
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One fake-gcs-server for the module; its env is set here and restored afterwards."""
    em = Emulator().start()
    saved = {k: os.environ.get(k) for k in em.env()}
    os.environ.update(em.env())
    try:
        for name in (BUCKET, FLOW_BUCKET, CR_BUCKET):
            em.create_bucket(name)
        yield em
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        em.stop()


@pytest.fixture(scope="module")
def gcs(emulator):
    """A plain google-cloud-storage client: the test's own view of the bucket, beside shardfit's."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="shardfit-test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": emulator.url})


def _names(gcs, bucket: str, prefix: str = "") -> list[str]:
    return sorted(b.name for b in gcs.list_blobs(bucket, prefix=prefix))


def _moons_model(seed: int = 0, trees: int = 3):
    from sklearn.datasets import make_moons
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_moons(n_samples=200, noise=0.2, random_state=seed)
    return RandomForestClassifier(n_estimators=trees, random_state=seed).fit(X, y), X


# -- registry on GCS --------------------------------------------------------


def test_publish_then_load_round_trip(emulator, gcs):
    model, X = _moons_model()
    location = f"gs://{BUCKET}/roundtrip"
    manifest = registry.publish(location, "moons", model, metrics={"merged": {"accuracy": 0.9}})
    version = manifest["version"]
    assert manifest["uri"] == f"gs://{BUCKET}/roundtrip/moons/{version}/model.joblib"
    assert _names(gcs, BUCKET, "roundtrip/") == sorted([
        "roundtrip/moons/latest.json",
        f"roundtrip/moons/{version}/manifest.json",
        f"roundtrip/moons/{version}/model.joblib",
    ])
    raw = gcs.bucket(BUCKET).blob(f"roundtrip/moons/{version}/model.joblib").download_as_bytes()
    assert hashlib.sha256(raw).hexdigest() == manifest["sha256"]
    latest = json.loads(gcs.bucket(BUCKET).blob("roundtrip/moons/latest.json").download_as_bytes())
    assert latest["version"] == version
    loaded = registry.load_model(location, "moons")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert registry.read_manifest(location, "moons")["metrics"] == {"merged": {"accuracy": 0.9}}


def test_a_version_is_immutable(emulator, gcs):
    first, X = _moons_model(seed=1)
    other, _ = _moons_model(seed=2, trees=5)
    location = f"gs://{BUCKET}/immutable"
    version = registry.new_version("r1")
    registry.publish(location, "moons", first, version=version)
    bucket = gcs.bucket(BUCKET)
    before = {k: bucket.get_blob(f"immutable/moons/{version}/{k}") for k in ("model.joblib", "manifest.json")}
    with pytest.raises(VersionExistsError, match="immutable"):
        registry.publish(location, "moons", other, version=version)
    for key, blob in before.items():
        now = bucket.get_blob(f"immutable/moons/{version}/{key}")
        assert now.generation == blob.generation, f"{key} was rewritten"
        assert now.download_as_bytes() == blob.download_as_bytes()
    loaded = registry.load_model(location, "moons", version)
    assert len(loaded.estimators_) == 3
    np.testing.assert_array_equal(loaded.predict(X), first.predict(X))


def test_tampered_model_is_refused(emulator, gcs):
    model, _ = _moons_model(seed=3)
    location = f"gs://{BUCKET}/tamper"
    version = registry.publish(location, "moons", model)["version"]
    blob = gcs.bucket(BUCKET).blob(f"tamper/moons/{version}/model.joblib")
    data = bytearray(blob.download_as_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 can catch it
    blob.upload_from_string(bytes(data))
    with pytest.raises(IntegrityError, match=f"gs://{BUCKET}/tamper/moons/{version}/model.joblib"):
        registry.load_model(location, "moons")
    with pytest.raises(IntegrityError):
        registry.fetch_verified(location, "moons", version)


def test_list_versions(emulator):
    location = f"gs://{BUCKET}/listing"
    model, _ = _moons_model(seed=4)
    versions = [f"20260101T00000000000{i}Z-run{i}" for i in (2, 1, 3)]
    for i, v in enumerate(versions):
        registry.publish(location, "moons", model, version=v, metrics={"merged": {"accuracy": 0.8 + i / 100}})
    # A sibling whose name extends this one: a plain GCS prefix 'moons' would match it too.
    registry.publish(location, "moons-2", model, version="20260101T000000000009Z-other")
    rows = registry.list_versions(location, "moons")
    assert [r["version"] for r in rows] == sorted(versions)
    assert [r["latest"] for r in rows] == [False, False, True]  # published 2, 1, 3: latest never went back to 1
    by_version = {r["version"]: r for r in rows}
    assert by_version[versions[0]]["metrics"] == {"accuracy": 0.8}
    assert all(r["size"] > 0 and len(r["sha256"]) == 64 for r in rows)
    assert [r["version"] for r in registry.list_versions(location, "moons-2")] == ["20260101T000000000009Z-other"]


def test_generation_primitives(emulator):
    """The two GCS preconditions the registry's guarantees rest on."""
    store = GCSStorage(f"gs://{BUCKET}/primitives")
    store.write_bytes("once", b"a", if_absent=True)
    with pytest.raises(PreconditionFailed):
        store.write_bytes("once", b"b", if_absent=True)
    assert store.read_bytes("once") == b"a"
    assert store.read_with_generation("absent") == (None, 0)
    store.compare_and_swap("cas", b"1", 0)
    data, gen = store.read_with_generation("cas")
    assert data == b"1" and gen > 0
    with pytest.raises(PreconditionFailed):
        store.compare_and_swap("cas", b"x", 0)  # create-only: it exists now
    store.compare_and_swap("cas", b"2", gen)
    with pytest.raises(PreconditionFailed):
        store.compare_and_swap("cas", b"3", gen)  # stale generation loses
    assert store.read_bytes("cas") == b"2"
    assert registry.move_latest(store, "m", "20260102T000000000000Z") is True
    assert registry.move_latest(store, "m", "20260101T000000000000Z") is False
    assert json.loads(store.read_bytes("m/latest.json"))["version"] == "20260102T000000000000Z"


# -- racing publishers --------------------------------------------------------


class LatestWatcher(threading.Thread):
    """Reads latest.json in a loop while publishers race, recording what a reader would see."""

    def __init__(self, location: str, name: str):
        super().__init__(daemon=True)
        self.store = GCSStorage(location)
        self.name = name
        self.seen: list[str] = []
        self.problems: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            data, _ = self.store.read_with_generation(f"{self.name}/latest.json")
            if data is None:
                continue
            try:
                version = json.loads(data)["version"]
            except (ValueError, KeyError):
                self.problems.append(f"torn latest.json: {data[:80]!r}")
                continue
            if self.seen and version < self.seen[-1]:
                self.problems.append(f"latest moved back from {self.seen[-1]} to {version}")
            for key in ("manifest.json", "model.joblib"):
                if not self.store.exists(f"{self.name}/{version}/{key}"):
                    self.problems.append(f"latest names {version} but its {key} is missing")
            self.seen.append(version)


def _race_versions(publishers: int, each: int) -> list[list[str]]:
    """Distinct sortable versions dealt round-robin, each publisher going up in step with the others.

    Publishers then keep contending for the next-higher `latest`, which is where a
    lost update (read, then a blind write) would move it backwards.
    """
    versions = [f"20260301T120000{n:06d}Z-p{n % publishers}" for n in range(publishers * each)]
    return [versions[i::publishers] for i in range(publishers)]


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_racing_publishers_keep_latest_consistent(emulator, mode):
    location = f"gs://{BUCKET}/race-{mode}"
    name = "raced"
    dealt = _race_versions(publishers=4 if mode == "threads" else 3, each=8 if mode == "threads" else 6)
    watcher = LatestWatcher(location, name)
    watcher.start()
    errors: list[BaseException] = []
    if mode == "threads":
        barrier = threading.Barrier(len(dealt))

        def publish_all(versions: list[str]) -> None:
            try:
                barrier.wait()
                for v in versions:
                    registry.publish(location, name, {"version": v}, version=v)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=publish_all, args=(vs,)) for vs in dealt]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    else:
        procs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, location, name, *vs], env=flow_env(),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for vs in dealt]
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, err = p.communicate(timeout=120)
            if p.returncode != 0 or "done" not in out:
                errors.append(RuntimeError(err[-2000:]))
    time.sleep(0.2)
    watcher.stop.set()
    watcher.join(10)
    assert not errors, errors
    everything = sorted(v for vs in dealt for v in vs)
    for v in everything:  # every version complete, verified, and holding its own content
        assert registry.load_model(location, name, v) == {"version": v}
    assert [r["version"] for r in registry.list_versions(location, name)] == everything
    assert registry.read_manifest(location, name)["version"] == everything[-1]
    assert watcher.seen, "the watcher never saw latest.json"
    assert not watcher.problems, watcher.problems[:5]


# -- data on GCS --------------------------------------------------------------


def _table(X: np.ndarray, y: np.ndarray):
    import pyarrow as pa

    return pa.table({**{f"f{j}": X[:, j] for j in range(X.shape[1])}, "label": y})


def _upload_parquet(gcs, bucket: str, key: str, X: np.ndarray, y: np.ndarray) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(_table(X, y), buf)
    gcs.bucket(bucket).blob(key).upload_from_string(buf.getvalue())


def _classification(n: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(n_samples=n, n_features=features, n_informative=4, n_redundant=0,
                               n_classes=3, random_state=seed)


def _data_spec(tmp_path: Path, source: str, **data) -> dict:
    raw = small_spec(tmp_path, **{"data": {"source": source, "partitions": 3, "seed": 7, **data}})
    return spec_mod.resolve(raw)


def _read_all(source: Source) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(chunk for unit in source.units for chunk in source.iter_chunks(unit)), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_parquet_glob_on_gcs(emulator, gcs, tmp_path):
    X, y = _classification(900, 5, seed=0)
    for i in range(3):
        _upload_parquet(gcs, BUCKET, f"pq/part-{i}.parquet", X[i * 300:(i + 1) * 300], y[i * 300:(i + 1) * 300])
    # Not matched by pq/*.parquet, as a local glob would not: a stale nested file and a marker.
    _upload_parquet(gcs, BUCKET, "pq/old/stale.parquet", X[:10, :2], y[:10])
    gcs.bucket(BUCKET).blob("pq/_SUCCESS").upload_from_string(b"")
    assert expand(f"gs://{BUCKET}/pq/*.parquet") == [f"gs://{BUCKET}/pq/part-{i}.parquet" for i in range(3)]
    assert f"gs://{BUCKET}/pq/old/stale.parquet" in expand(f"gs://{BUCKET}/pq/**/*.parquet")

    spec = _data_spec(tmp_path, f"gs://{BUCKET}/pq/*.parquet", chunk_rows=128)
    source = Source(spec["data"])
    assert [u.uris for u in source.units] == [[f"gs://{BUCKET}/pq/part-{i}.parquet"] for i in range(3)]
    got_X, got_y = _read_all(source)
    np.testing.assert_array_equal(got_X, X.astype(np.float32))
    np.testing.assert_array_equal(got_y, y)
    assert source.feature_names == [f"f{j}" for j in range(5)]


def test_csv_folder_on_gcs(emulator, gcs, tmp_path):
    X, y = _classification(400, 4, seed=1)
    names = np.array(["ant", "bee", "cat"], dtype=object)
    for i in range(2):
        rows = ["a,b,c,d,label"] + [",".join(f"{v:.6f}" for v in X[r]) + f",{names[y[r]]}"
                                    for r in range(i * 200, (i + 1) * 200)]
        gcs.bucket(BUCKET).blob(f"csv/day-{i}.csv").upload_from_string("\n".join(rows) + "\n")
    spec = _data_spec(tmp_path, f"gs://{BUCKET}/csv/", chunk_rows=50)
    source = Source(spec["data"])
    assert len(source.units) == 2 and all(u.fmt == "csv" for u in source.units)
    got_X, got_y = _read_all(source)
    np.testing.assert_allclose(got_X, X.astype(np.float32), atol=1e-5)
    decoded = source.encoders.label_values()[got_y]
    np.testing.assert_array_equal(decoded, names[y])


def test_partitions_round_trip_through_gcs(emulator, gcs, tmp_path):
    X, y = _classification(600, 4, seed=2)
    _upload_parquet(gcs, BUCKET, "pq2/all.parquet", X, y)
    spec = _data_spec(tmp_path, f"gs://{BUCKET}/pq2/*.parquet")
    store = GCSStorage(f"gs://{BUCKET}/work")
    plan = partition(spec, store, "_runs/F/1/partitions", classification=True)
    written = _names(gcs, BUCKET, "work/_runs/F/1/partitions/")
    assert {n.rsplit("/", 1)[-1] for n in written} == {
        f"{stem}.{s}" for stem in ("part-0000", "part-0001", "part-0002", "holdout") for s in ("X.npy", "y.npy")}
    assert plan["prefix"] == f"gs://{BUCKET}/work/_runs/F/1/partitions"
    rows = 0
    for desc in plan["partitions"]:
        part_X, part_y, cleanups = load_part(desc, plan, spec["data"], store)
        assert part_X.shape == (desc["rows"], 4) and len(part_y) == desc["rows"]
        rows += len(part_y)
        for c in cleanups:
            c()
    assert rows + plan["holdout"]["rows"] == 600
    assert store.delete_prefix("_runs/F/1") == len(written)
    assert _names(gcs, BUCKET, "work/") == []


# -- the flow, with data, models and the Metaflow datastore on GCS -------------


class PrefixPoller(threading.Thread):
    """Records every object seen under a prefix while a run is going on."""

    def __init__(self, gcs, bucket: str, prefix: str):
        super().__init__(daemon=True)
        self.gcs, self.bucket, self.prefix = gcs, bucket, prefix
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.seen.update(_names(self.gcs, self.bucket, self.prefix))


CLIENT_SCRIPT = """\
import json, sys
import numpy as np
from metaflow import Run, namespace
from shardfit import registry
namespace(None)
run = Run(sys.argv[1])
X = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
model = run.data.model
published = registry.load_model(run.data.model_uri.rsplit("/", 3)[0], run["join"].task.data.resolved_spec["name"],
                                 run.data.version)
print(json.dumps({
    "successful": run.successful,
    "model_uri": run.data.model_uri,
    "version": run.data.version,
    "model_class": type(model).__name__,
    "n_estimators": len(model.estimators_),
    "same_predictions": bool((model.predict_proba(X) == published.predict_proba(X)).all()),
    "plan_prefix": run["partition"].task.data.plan["prefix"],
    "artifact_root": run["end"].task["model_uri"]._object["location"],
    "tags": sorted(run.user_tags),
}))
"""


def test_flow_with_data_models_and_datastore_on_gcs(emulator, gcs, tmp_path):
    X, y = _classification(900, 5, seed=3)
    for i in range(3):
        _upload_parquet(gcs, FLOW_BUCKET, f"data/part-{i}.parquet", X[i * 300:(i + 1) * 300], y[i * 300:(i + 1) * 300])
    spec = small_spec(tmp_path, **{
        "name": "gcs-rf",
        "data": {"source": f"gs://{FLOW_BUCKET}/data/*.parquet", "partitions": 3, "seed": 7, "test_size": 0.25},
        "model.parameters": {"n_estimators": 4, "random_state": 0},
        "output": f"gs://{FLOW_BUCKET}/models",
    })
    path = write_spec(tmp_path, spec)
    sysroot = f"gs://{FLOW_BUCKET}/metaflow"
    # Own local metadata root, so this run never shows up as another test's latest run.
    env = flow_env(METAFLOW_DATASTORE_SYSROOT_GS=sysroot, METAFLOW_DEFAULT_DATASTORE="gs",
                   METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "mf"))
    poller = PrefixPoller(gcs, FLOW_BUCKET, "models/_runs/")
    poller.start()
    try:
        result = run_flow(["--datastore=gs", "run", "--spec", str(path)], env=env, cwd=tmp_path, timeout=300)
    finally:
        poller.stop.set()
        poller.join(10)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = re.search(r"\[(\d+)/start/", result.stdout + result.stderr).group(1)

    # The model version objects.
    rows = registry.list_versions(f"gs://{FLOW_BUCKET}/models", "gcs-rf")
    assert len(rows) == 1 and rows[0]["latest"] and rows[0]["pathspec"] == f"{FLOW_NAME}/{run_id}"
    version = rows[0]["version"]
    assert version.endswith(f"-{run_id}")
    assert _names(gcs, FLOW_BUCKET, "models/gcs-rf/") == sorted([
        f"models/gcs-rf/{version}/manifest.json", f"models/gcs-rf/{version}/model.joblib", "models/gcs-rf/latest.json"])

    # Partitions lived under the output's _runs/ prefix during the run, and are gone now.
    partitions = f"models/_runs/{FLOW_NAME}/{run_id}/partitions/"
    assert poller.seen, "no partition object was ever seen under models/_runs/"
    assert all(n.startswith(partitions) for n in poller.seen), sorted(poller.seen)[:5]
    assert f"{partitions}holdout.X.npy" in poller.seen
    assert _names(gcs, FLOW_BUCKET, "models/_runs/") == []
    assert "end: removed 8 partition files" in result.stdout + result.stderr

    # Metaflow's artifacts are in the bucket under the sysroot, not on local disk.
    meta = _names(gcs, FLOW_BUCKET, f"metaflow/{FLOW_NAME}/")
    for step in ("start", "partition", "train", "join", "end"):
        assert any(n.startswith(f"metaflow/{FLOW_NAME}/{run_id}/{step}/") for n in meta), step
    assert any(n.startswith(f"metaflow/{FLOW_NAME}/data/") for n in meta), "no content-addressed artifacts"
    assert not list((tmp_path / "mf").rglob("*.data.json"))

    # The Client API, in a fresh process configured for the gs datastore.
    probe = X[:20].astype(np.float32).tolist()
    client = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, f"{FLOW_NAME}/{run_id}", json.dumps(probe)],
                            env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=180)
    assert client.returncode == 0, client.stderr[-3000:]
    seen = json.loads(client.stdout.strip().splitlines()[-1])
    assert seen["successful"] is True
    assert seen["model_uri"] == f"gs://{FLOW_BUCKET}/models/gcs-rf/{version}/model.joblib"
    assert seen["version"] == version
    assert seen["model_class"] == "RandomForestClassifier" and seen["n_estimators"] == 12
    assert seen["same_predictions"] is True
    assert seen["plan_prefix"] == f"gs://{FLOW_BUCKET}/{partitions.rstrip('/')}"
    assert seen["artifact_root"].endswith(sysroot)
    assert {"model:gcs-rf", f"version:{version}"} <= set(seen["tags"])
    assert "could not tag run" not in result.stdout + result.stderr


# -- the operator's custom resource, against a bucket laid out its way ---------


def test_operator_cr_on_its_bucket(emulator, gcs, tmp_path):
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=1500, noise=0.3, random_state=0)
    bucket = gcs.bucket(CR_BUCKET)
    for n in range(3):
        bucket.blob(f"data/train_{n}.pkl").upload_from_string(pickle.dumps(X[n * 500:(n + 1) * 500]))
        bucket.blob(f"data/label_{n}.pkl").upload_from_string(pickle.dumps(y[n * 500:(n + 1) * 500]))
    bucket.blob("merge_list_rfs.py").upload_from_string(OPERATOR_MERGER)

    cr = yaml.safe_load((ROOT / "specs" / "operator-cr.yaml").read_text())
    cr["spec"]["baseGcsBucket"] = CR_BUCKET  # no gs:// prefix, as the operator wrote it
    cr["spec"]["model"]["parameters"] = "n_estimators=20, max_leaf_nodes=16, random_state=666, n_jobs=-1"
    assert cr["kind"] == "DistributedTraining" and cr["spec"]["image"]["worker"]["number"] == 3
    assert cr["spec"]["model"]["merger"] == {"module": "merge_list_rfs", "function": "combine_rfs"}
    path = tmp_path / "cr.yaml"
    path.write_text(yaml.safe_dump(cr, sort_keys=False))

    env = flow_env(METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "mf"))
    result = run_flow(["run", "--spec", str(path)], env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    manifest = registry.read_manifest(f"gs://{CR_BUCKET}/models", "dt-test1")
    version = manifest["version"]
    assert manifest["uri"] == f"gs://{CR_BUCKET}/models/dt-test1/{version}/model.joblib"
    assert bucket.blob(f"models/dt-test1/{version}/model.joblib").exists()
    assert manifest["merger"]["origin"] == f"gs://{CR_BUCKET}/merge_list_rfs.py"
    assert manifest["merger"]["sha256"] == hashlib.sha256(OPERATOR_MERGER.encode()).hexdigest()
    model = registry.load_model(f"gs://{CR_BUCKET}/models", "dt-test1")
    assert len(model.estimators_) == 60 and model.n_estimators == 60
    X_new, y_new = make_moons(n_samples=2000, noise=0.3, random_state=123)
    assert model.score(X_new, y_new) > 0.85
    assert _names(gcs, CR_BUCKET, "models/_runs/") == []


# -- python -m shardfit models, on gs:// ----------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shardfit", "models", *args], env=flow_env(), cwd=str(cwd),
                          capture_output=True, text=True, timeout=120)


def test_cli_models_on_gcs(emulator, gcs, tmp_path):
    location = f"gs://{BUCKET}/cli"
    model, X = _moons_model(seed=5)
    old = registry.publish(location, "moons", model, metrics={"merged": {"accuracy": 0.875}}, spec={"name": "moons"})
    new = registry.publish(location, "moons", model, metrics={"merged": {"accuracy": 0.9125}}, spec={"name": "moons"})

    listed = _cli("list", location, "moons", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = [ln for ln in listed.stdout.splitlines() if old["version"] in ln or new["version"] in ln]
    assert len(lines) == 2
    assert lines[0].startswith(" ") and "accuracy=0.8750" in lines[0] and "latest" not in lines[0]
    assert lines[1].startswith("*") and "accuracy=0.9125" in lines[1] and lines[1].endswith("latest")

    shown = _cli("show", location, "moons", old["version"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)
    assert manifest["version"] == old["version"] and "spec" not in manifest
    assert manifest["uri"] == f"{location}/moons/{old['version']}/model.joblib"
    with_spec = json.loads(_cli("show", location, "moons", "--spec", cwd=tmp_path).stdout)
    assert with_spec["version"] == new["version"] and with_spec["spec"] == {"name": "moons"}

    pulled = _cli("pull", location, "moons", "--dest", f"{tmp_path / 'got'}/", cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    target = Path(pulled.stdout.strip())
    assert target == tmp_path / "got" / "model.joblib"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == new["sha256"]

    blob = gcs.bucket(BUCKET).blob(f"cli/moons/{new['version']}/model.joblib")
    blob.upload_from_string(blob.download_as_bytes() + b"\0")
    refused = _cli("pull", location, "moons", "--dest", str(tmp_path / "bad"), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert re.fullmatch(r"shardfit: error: .*does not match manifest.*\n", refused.stderr)
    assert not (tmp_path / "bad").exists()
    for out in (listed, shown, pulled, refused):
        assert "throwaway" not in out.stdout + out.stderr  # nothing of the ADC file leaks
