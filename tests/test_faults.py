"""Retries, resume and no partial publish, through real Metaflow runs."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import flow_env, run_flow, small_spec, write_spec

import shardfit


def _run(tmp_path: Path, path: Path, command: str = "run", **faults: str) -> tuple[int, str]:
    """Run the flow on a spec with fault switches set; return its exit code and all it printed."""
    result = run_flow([command, "--spec", str(path)], env=flow_env(**faults), cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


def _versions(models: Path) -> list[str]:
    root = models / "tiny-rf"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_train_task_killed_mid_fit_is_retried(tmp_path: Path):
    rc, out = _run(tmp_path, write_spec(tmp_path, small_spec(tmp_path)), SHARDFIT_CRASH_FIRST_ATTEMPT="1")
    assert rc == 0, out
    assert "partition 1 dies on attempt 0" in out
    model = shardfit.load_model(str(tmp_path / "models"), "tiny-rf")
    assert len(model.estimators_) == 30
    manifest = shardfit.read_manifest(str(tmp_path / "models"), "tiny-rf")
    attempts = {r["index"]: r["attempt"] for r in manifest["metrics"]["partitions"]}
    assert attempts == {0: 0, 1: 1, 2: 0}


def test_failed_join_publishes_nothing_and_resume_publishes_once(tmp_path: Path):
    models = tmp_path / "models"
    path = write_spec(tmp_path, small_spec(tmp_path))
    rc, out = _run(tmp_path, path)
    assert rc == 0, out
    before = _versions(models)
    latest_before = (models / "tiny-rf" / "latest.json").read_text()
    assert len(before) == 1

    rc, out = _run(tmp_path, path, SHARDFIT_FAIL_JOIN="1")
    assert rc != 0
    assert "join failed after merge, before publish" in out
    assert _versions(models) == before
    assert (models / "tiny-rf" / "latest.json").read_text() == latest_before
    partitions = list((models / "_runs").rglob("part-*.X.npy"))
    assert len(partitions) == 3  # kept for resume

    rc, out = _run(tmp_path, path, "resume")
    assert rc == 0, out
    assert out.count("Cloning previously run task") == 5  # start, partition, 3 x train
    assert "/train/" not in "\n".join(ln for ln in out.splitlines() if "Task is starting" in ln)
    after = _versions(models)
    assert len(after) == 2 and set(before) < set(after)
    latest = json.loads((models / "tiny-rf" / "latest.json").read_text())["version"]
    assert latest == max(after)
    assert not list((models / "_runs").rglob("*.npy"))  # cleaned after the resumed success


def test_join_retried_after_publishing_publishes_once(tmp_path: Path):
    rc, out = _run(tmp_path, write_spec(tmp_path, small_spec(tmp_path)), SHARDFIT_FAIL_JOIN_AFTER_PUBLISH="1")
    assert rc == 0, out
    assert "join failed after publishing, on attempt 0" in out
    assert len(_versions(tmp_path / "models")) == 1


def test_skops_format_round_trips_with_an_allowlist(tmp_path: Path):
    spec = small_spec(tmp_path, output={"location": str(tmp_path / "models"), "format": "skops"})
    rc, out = _run(tmp_path, write_spec(tmp_path, spec))
    assert rc == 0, out
    manifest = shardfit.read_manifest(str(tmp_path / "models"), "tiny-rf")
    assert manifest["format"] == "skops" and manifest["file"] == "model.skops"
    model = shardfit.load_model(str(tmp_path / "models"), "tiny-rf")
    assert len(model.estimators_) == 30
