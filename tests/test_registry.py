"""The local registry: immutable versions, a latest that never tears or moves back, checked loads."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from shardfit import registry
from shardfit.errors import IntegrityError, RegistryError, VersionExistsError


def _model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def test_versions_are_unique_and_sortable():
    import datetime as dt

    t = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    a = registry.new_version("17", now=t)
    b = registry.new_version("3", now=t + dt.timedelta(microseconds=1))
    assert a == "20260102T030405000006Z-17" and a < b


def test_publish_then_load(tmp_path: Path):
    m = registry.publish(str(tmp_path), "lr", _model(), metrics={"merged": {"accuracy": 0.9}}, version="v1")
    assert Path(m["uri"]).name == "model.joblib"
    loaded = registry.load_model(str(tmp_path), "lr")
    assert np.array_equal(loaded.coef_, _model().coef_)
    assert json.loads((tmp_path / "lr" / "latest.json").read_text())["version"] == "v1"
    assert registry.list_versions(str(tmp_path), "lr")[0]["metrics"] == {"accuracy": 0.9}


def test_a_version_cannot_be_overwritten(tmp_path: Path):
    registry.publish(str(tmp_path), "lr", _model(0), version="v1")
    before = (tmp_path / "lr" / "v1" / "model.joblib").read_bytes()
    with pytest.raises(VersionExistsError, match="versions are immutable"):
        registry.publish(str(tmp_path), "lr", _model(1), version="v1")
    assert (tmp_path / "lr" / "v1" / "model.joblib").read_bytes() == before


def test_latest_never_moves_backwards(tmp_path: Path):
    registry.publish(str(tmp_path), "lr", _model(), version="v2")
    registry.publish(str(tmp_path), "lr", _model(), version="v1")
    assert registry.read_manifest(str(tmp_path), "lr")["version"] == "v2"
    assert registry.read_manifest(str(tmp_path), "lr", "v1")["version"] == "v1"


def test_tampered_model_is_refused(tmp_path: Path):
    registry.publish(str(tmp_path), "lr", _model(), version="v1")
    path = tmp_path / "lr" / "v1" / "model.joblib"
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="refusing to load"):
        registry.load_model(str(tmp_path), "lr")


def test_unknown_name_and_version_are_clear(tmp_path: Path):
    with pytest.raises(RegistryError, match="no published version of 'nope'"):
        registry.load_model(str(tmp_path), "nope")
    registry.publish(str(tmp_path), "lr", _model(), version="v1")
    with pytest.raises(RegistryError, match="no such version"):
        registry.load_model(str(tmp_path), "lr", "v9")


def test_skops_refuses_types_outside_the_allowlist():
    import collections

    import skops.io as sio

    blob = sio.dumps({"m": _model(), "odd": collections.Counter("ab"), "f": np.float64(1)})
    registry.deserialize(blob, "skops")  # collections, numpy, sklearn: allowed
    blob = sio.dumps({"x": Path("/tmp")})
    with pytest.raises(RegistryError, match="outside the allowlist: pathlib"):
        registry.deserialize(blob, "skops")


def _publisher(root: str, tag: str, n: int) -> None:
    for i in range(n):
        registry.publish(root, "race", _model(i), version=registry.new_version(f"{tag}{i}"))


def _check_race(root: Path, expected: int) -> None:
    versions = registry.list_versions(str(root), "race")
    assert len(versions) == expected
    names = [v["version"] for v in versions]
    latest = json.loads((root / "race" / "latest.json").read_text())["version"]
    assert latest == max(names)
    for v in names:
        registry.load_model(str(root), "race", v)  # every version whole and verified


def test_race_between_threads(tmp_path: Path):
    threads = [threading.Thread(target=_publisher, args=(str(tmp_path), t, 5)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_race(tmp_path, 10)


def test_race_between_processes(tmp_path: Path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_publisher, args=(str(tmp_path), t, 4)) for t in "xyz"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    _check_race(tmp_path, 12)


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "v1/../../etc"])
def test_version_ids_cannot_leave_the_model_folder(tmp_path: Path, bad: str):
    registry.publish(str(tmp_path), "lr", _model(), version="v1")
    with pytest.raises(RegistryError, match="not a valid version id"):
        registry.read_manifest(str(tmp_path), "lr", bad)


def test_a_run_finds_the_version_it_already_published(tmp_path: Path):
    registry.publish(str(tmp_path), "lr", _model(), version="v1", pathspec="F/1")
    registry.publish(str(tmp_path), "lr", _model(), version="v2", pathspec="F/2")
    assert registry.find_run_version(str(tmp_path), "lr", "F/1")["version"] == "v1"
    assert registry.find_run_version(str(tmp_path), "lr", "F/3") is None
