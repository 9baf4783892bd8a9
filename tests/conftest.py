"""Shared test set-up: an isolated Metaflow datastore and small specs written on the fly."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "flows" / "train.py"

# Metaflow reads its settings at import: isolate the datastore before anything imports it.
_MF_ROOT = tempfile.mkdtemp(prefix="shardfit-mf-")
os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = _MF_ROOT
os.environ.setdefault("METAFLOW_USER", "shardfit-tests")
os.environ.pop("METAFLOW_PROFILE", None)


def flow_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def small_spec(tmp_path: Path, **overrides) -> dict:
    """A spec that trains in seconds: 3 classes, 3 partitions, 10 trees each."""
    spec = {
        "name": "tiny-rf",
        "data": {
            "source": "sklearn.datasets:make_classification",
            "params": {"n_samples": 3000, "n_features": 8, "n_informative": 5, "n_classes": 3,
                       "random_state": 0},
            "test_size": 0.25,
            "partitions": 3,
            "seed": 7,
        },
        "model": {"module": "sklearn.ensemble", "class": "RandomForestClassifier",
                  "parameters": {"n_estimators": 10, "random_state": 0}},
        "merger": {"module": "mergers.forest", "function": "combine_forests"},
        "output": str(tmp_path / "models"),
    }
    for dotted, value in overrides.items():
        node = spec
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return spec


def write_spec(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_flow(args: list[str], env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    import subprocess

    return subprocess.run(
        [sys.executable, str(FLOW), *args],
        capture_output=True, text=True, env=env or flow_env(), cwd=str(cwd or ROOT), timeout=timeout,
    )


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path, small_spec(tmp_path))
