"""Every row of tests/bad_inputs.yaml, through the real CLI: one line, non-zero exit, nothing run or published."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_flow, small_spec, write_spec

ROWS = yaml.safe_load((ROOT / "tests" / "bad_inputs.yaml").read_text())


def _fill(value, tmp: Path):
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    return value


def _apply(spec: dict, dotted: str, value) -> None:
    node = spec
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def test_table_covers_every_case_once():
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids)) >= 25


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_bad_input(row: dict, tmp_path: Path):
    for name, content in (row.get("files") or {}).items():
        (tmp_path / name).write_text(content)
    if "raw" in row:
        path = tmp_path / "spec.yaml"
        path.write_text(row["raw"])
    elif "spec_path" in row:
        path = Path(_fill(row["spec_path"], tmp_path))
    else:
        spec = small_spec(tmp_path)
        for dotted, value in (row.get("set") or {}).items():
            _apply(spec, dotted, _fill(value, tmp_path))
        path = write_spec(tmp_path, spec)
    result = run_flow(["run", "--spec", str(path)], cwd=tmp_path)
    out = result.stdout + result.stderr
    expect = _fill(row["expect"], tmp_path)
    assert result.returncode != 0, out
    assert expect in out, out
    line = next(ln for ln in out.splitlines() if expect in ln)
    assert len(line) < 400
    assert "Traceback" not in out
    assert "/train/" not in out, "a train task started"
    published = [p for p in (tmp_path / "models").rglob("*.joblib")] if (tmp_path / "models").exists() else []
    assert not published
    assert not os.path.exists(tmp_path / "models" / "tiny-rf" / "latest.json")
