"""Sources, formats and the streaming partitioner, on small files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardfit import spec as spec_mod
from shardfit.data import Source
from shardfit.errors import DataError
from shardfit.partition import Assigner, NpyAppender, load_part, partition
from shardfit.storage import LocalStorage


def _spec(source: str, **data) -> dict:
    raw = {
        "name": "t",
        "data": {"source": source, **data},
        "model": {"module": "sklearn.ensemble", "class": "RandomForestClassifier"},
        "output": "unused",
    }
    return spec_mod.resolve(raw)


def _table(n: int, seed: int, classes: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {f"f{i}": rng.normal(size=n).astype(np.float64) for i in range(4)}
    cols["label"] = rng.integers(0, classes, size=n)
    return pa.table(cols)


def _all_rows(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    src = Source(spec["data"])
    xs, ys = zip(*[c for u in src.units for c in src.iter_chunks(u)], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_parquet_glob_of_several_files(tmp_path: Path):
    for i in range(3):
        pq.write_table(_table(100, i), tmp_path / f"part-{i}.parquet")
    spec = _spec(str(tmp_path / "*.parquet"), chunk_rows=37)
    src = Source(spec["data"])
    assert len(src.units) == 3
    X = np.concatenate([c[0] for u in src.units for c in src.iter_chunks(u)])
    assert X.shape == (300, 4) and X.dtype == np.float32
    expected = np.concatenate([_table(100, i)["f2"].to_numpy() for i in range(3)]).astype(np.float32)
    assert np.array_equal(X[:, 2], expected)
    assert src.feature_names == ["f0", "f1", "f2", "f3"]


def test_features_selects_columns(tmp_path: Path):
    pq.write_table(_table(50, 0), tmp_path / "a.parquet")
    spec = _spec(str(tmp_path / "a.parquet"), features=["f3", "f1"])
    X, _ = _all_rows(spec)
    t = _table(50, 0)
    assert np.array_equal(X[:, 0], t["f3"].to_numpy().astype(np.float32))
    assert X.shape == (50, 2)


def test_numeric_types_and_nulls_convert_to_float32_columns(tmp_path: Path):
    """Arrow buffers are read as numpy views (offsets included); nulls in numeric features become NaN."""
    n = 1000
    ints = [None if i % 7 == 0 else i for i in range(n)]
    floats = [None if i % 5 == 0 else i / 4 for i in range(n)]
    table = pa.table({
        "f64": pa.array(np.arange(n) * 0.5, type=pa.float64()),
        "i32": pa.array(ints, type=pa.int32()),
        "f32": pa.array(floats, type=pa.float32()),
        "flag": pa.array([i % 2 == 0 for i in range(n)]),
        "label": pa.array(np.arange(n) % 3, type=pa.int16()),
    })
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=300)
    src = Source(_spec(str(tmp_path / "a.parquet"), chunk_rows=128)["data"])
    chunks = list(src.iter_columns(src.units[0]))
    assert [len(y) for _, y in chunks] == [128] * 7 + [104]  # batches straddle the 300-row row groups
    cols = [np.concatenate([c[j] for c, _ in chunks]) for j in range(4)]
    assert all(c.dtype == np.float32 for c in cols)
    assert np.array_equal(cols[0], np.arange(n) * 0.5)
    assert np.array_equal(cols[1], np.array([np.nan if v is None else v for v in ints], dtype=np.float32), equal_nan=True)
    assert np.array_equal(cols[2], np.array([np.nan if v is None else v for v in floats], dtype=np.float32), equal_nan=True)
    assert np.array_equal(cols[3], (np.arange(n) % 2 == 0).astype(np.float32))
    assert np.array_equal(np.concatenate([y for _, y in chunks]), np.arange(n) % 3)


def test_csv_streams_with_header_and_target(tmp_path: Path):
    rows = "\n".join(f"{i},{i * 2},{i % 2}" for i in range(1000))
    (tmp_path / "d.csv").write_text("a,b,cls\n" + rows + "\n")
    spec = _spec(str(tmp_path / "d.csv"), target="cls", chunk_rows=100, csv={"block_size": 4096})
    src = Source(spec["data"])
    chunks = list(src.iter_chunks(src.units[0]))
    assert len(chunks) > 2 and all(len(c[0]) <= 100 for c in chunks)
    X = np.concatenate([c[0] for c in chunks])
    y = np.concatenate([c[1] for c in chunks])
    assert np.array_equal(X[:, 1], np.arange(1000) * 2.0)
    assert np.array_equal(y, np.arange(1000) % 2)


def test_csv_non_numeric_column_error_names_it(tmp_path: Path):
    (tmp_path / "d.csv").write_text("a,color,label\n1,red,0\n2,blue,1\n")
    with pytest.raises(DataError, match="column 'color' in d.csv is not numeric"):
        _all_rows(_spec(str(tmp_path / "d.csv")))


def test_categorical_columns_are_ordinal_encoded(tmp_path: Path):
    (tmp_path / "d.csv").write_text("a,color,label\n1,red,0\n2,blue,1\n3,red,1\n4,,0\n")
    X, _ = _all_rows(_spec(str(tmp_path / "d.csv"), categorical=["color"]))
    assert X[:3, 1].tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(X[3, 1])


def test_string_labels_are_coded_and_decodable(tmp_path: Path):
    (tmp_path / "d.csv").write_text("a,label\n1,cat\n2,dog\n3,cat\n")
    spec = _spec(str(tmp_path / "d.csv"))
    src = Source(spec["data"])
    _, y = next(src.iter_chunks(src.units[0]))
    assert y.tolist() == [0, 1, 0]
    assert src.encoders.label_values().tolist() == ["cat", "dog"]


def test_npy_is_memory_mapped_and_last_column_is_the_label(tmp_path: Path):
    arr = np.hstack([np.random.default_rng(0).normal(size=(200, 3)), (np.arange(200) % 3)[:, None]])
    np.save(tmp_path / "d.npy", arr)
    X, y = _all_rows(_spec(str(tmp_path / "d.npy"), chunk_rows=64))
    assert np.array_equal(X, arr[:, :3].astype(np.float32))
    assert np.array_equal(y, arr[:, 3])


def test_npz_holds_x_and_y(tmp_path: Path):
    X0 = np.arange(30, dtype=np.float64).reshape(10, 3)
    np.savez(tmp_path / "d.npz", X=X0, y=np.arange(10) % 2)
    X, y = _all_rows(_spec(str(tmp_path / "d.npz")))
    assert np.array_equal(X, X0.astype(np.float32)) and y.tolist() == [0, 1] * 5


def test_operator_pickles_pair_by_index(tmp_path: Path):
    for n in range(2):
        (tmp_path / f"train_{n}.pkl").write_bytes(pickle.dumps(np.full((5, 2), n, dtype=float)))
        (tmp_path / f"label_{n}.pkl").write_bytes(pickle.dumps(np.full(5, n)))
    src = Source(_spec(str(tmp_path))["data"])
    assert [u.name for u in src.units] == ["train_0.pkl, label_0.pkl", "train_1.pkl, label_1.pkl"]
    X, y = _all_rows(_spec(str(tmp_path)))
    assert X[:5].sum() == 0 and X[5:].sum() == 10 and y.tolist() == [0] * 5 + [1] * 5


def test_callable_source(tmp_path: Path):
    X, y = _all_rows(_spec("sklearn.datasets:make_moons", params={"n_samples": 100, "random_state": 1}))
    assert X.shape == (100, 2) and set(y.tolist()) == {0, 1}


def test_npy_appender_writes_valid_npy(tmp_path: Path):
    w = NpyAppender(str(tmp_path / "a.npy"), np.float32, 3)
    blocks = [np.random.default_rng(i).normal(size=(n, 3)) for i, n in enumerate([5, 0, 17])]
    for b in blocks:
        w.append(b)
    w.close()
    got = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert got.shape == (22, 3)
    assert np.array_equal(got, np.concatenate(blocks).astype(np.float32))


def _partition(tmp_path: Path, spec: dict, prefix: str = "run") -> tuple[dict, LocalStorage]:
    storage = LocalStorage(str(tmp_path / "out"))
    return partition(spec, storage, prefix, classification=True), storage


def test_stratified_class_counts_within_one_row(tmp_path: Path):
    y = np.repeat([0, 1, 2, 3], [997, 500, 61, 7])  # label-sorted, unbalanced
    X = np.random.default_rng(0).normal(size=(len(y), 2))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    spec = _spec(str(tmp_path / "d.npz"), partitions=5, partitioning="stratified", chunk_rows=100, test_size=0.2)
    plan, _ = _partition(tmp_path, spec)
    for cls in ["0", "1", "2", "3"]:
        counts = [p["class_counts"].get(cls, 0) for p in plan["partitions"]]
        assert max(counts) - min(counts) <= 1, (cls, counts)
    hold = plan["holdout"]["class_counts"]
    for cls, n in zip(["0", "1", "2", "3"], [997, 500, 61, 7], strict=True):
        assert abs(hold.get(cls, 0) - n * 0.2) <= 1
    assert sum(p["rows"] for p in plan["partitions"]) + plan["holdout"]["rows"] == len(y)


def test_same_seed_same_partitions_whatever_the_chunking(tmp_path: Path):
    pq.write_table(_table(2000, 3), tmp_path / "a.parquet")
    outs = []
    for i, chunk in enumerate([128, 128, 777]):
        spec = _spec(str(tmp_path / "a.parquet"), partitions=4, seed=11, chunk_rows=chunk)
        plan, storage = _partition(tmp_path, spec, prefix=f"r{i}")
        outs.append([np.load(p["X"]).tobytes() for p in plan["partitions"]])
    assert outs[0] == outs[1] == outs[2]
    spec = _spec(str(tmp_path / "a.parquet"), partitions=4, seed=12)
    plan, _ = _partition(tmp_path, spec, prefix="other")
    assert [np.load(p["X"]).tobytes() for p in plan["partitions"]] != outs[0]


def test_shuffle_partitions_cover_all_rows_once(tmp_path: Path):
    pq.write_table(_table(3000, 5), tmp_path / "a.parquet")
    spec = _spec(str(tmp_path / "a.parquet"), partitions=3, chunk_rows=500)
    plan, storage = _partition(tmp_path, spec)
    got = [np.load(p["X"]) for p in plan["partitions"]] + [np.load(plan["holdout"]["X"])]
    assert sum(len(g) for g in got) == 3000
    firsts = np.sort(np.concatenate([g[:, 0] for g in got]))
    assert np.array_equal(firsts, np.sort(_table(3000, 5)["f0"].to_numpy().astype(np.float32)))
    assert 600 < plan["holdout"]["rows"] < 900  # test_size 0.25
    for p in plan["partitions"]:
        assert p["bytes"] > p["rows"] * 4 * 4


def _rows_with_labels(X: np.ndarray, y: np.ndarray) -> list[tuple]:
    return sorted(zip(map(bytes, np.asarray(X, dtype=np.float32)), y.tolist(), strict=True))


@pytest.mark.parametrize("mode", ["shuffle", "stratified", "files"])
def test_every_row_lands_whole_exactly_once(tmp_path: Path, mode: str):
    """Columns are gathered one by one: every output row must still be one input row, with its own label."""
    for i in range(3):
        pq.write_table(_table(700, 20 + i, classes=4), tmp_path / f"p{i}.parquet")
    spec = _spec(str(tmp_path / "p*.parquet"), partitioning=mode, partitions=3, chunk_rows=128, test_size=0.2)
    plan, storage = _partition(tmp_path, spec)
    X_in, y_in = _all_rows(spec)
    xs, ys = [np.load(plan["holdout"]["X"])], [np.load(plan["holdout"]["y"])]
    for p in plan["partitions"]:
        X, y, _ = load_part(p, plan, spec["data"], storage)
        assert len(X) == len(y) == p["rows"]
        assert {str(k): v for k, v in zip(*np.unique(y, return_counts=True), strict=True)} == {
            k: v for k, v in p["class_counts"].items() if v}
        xs.append(X)
        ys.append(y)
    assert _rows_with_labels(np.concatenate(xs), np.concatenate(ys)) == _rows_with_labels(X_in, y_in)


def test_files_partitioning_reads_inputs_in_place(tmp_path: Path):
    for i in range(4):
        pq.write_table(_table(400, i), tmp_path / f"p{i}.parquet")
    spec = _spec(str(tmp_path / "p*.parquet"), partitioning="files", partitions=2, test_size=0.2)
    plan, storage = _partition(tmp_path, spec)
    written = sorted(p.name for p in (tmp_path / "out" / "run").iterdir())
    assert written == ["holdout.X.npy", "holdout.y.npy"]  # partitions are not rewritten
    assert [len(p["units"]) for p in plan["partitions"]] == [2, 2]
    total = 0
    for p in plan["partitions"]:
        X, y, _ = load_part(p, plan, spec["data"], storage)
        assert len(X) == p["rows"] == len(y)
        total += len(X)
    assert total + plan["holdout"]["rows"] == 1600


def test_corrupt_partition_error_names_it(tmp_path: Path):
    pq.write_table(_table(500, 0), tmp_path / "a.parquet")
    spec = _spec(str(tmp_path / "a.parquet"), partitions=2)
    plan, storage = _partition(tmp_path, spec)
    Path(plan["partitions"][1]["X"]).write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"^partition 1 of 2: cannot read .*part-0001.X.npy"):
        load_part(plan["partitions"][1], plan, spec["data"], storage)


def test_stratified_assigner_is_chunk_invariant():
    y = np.random.default_rng(1).integers(0, 4, size=5000)
    a = Assigner("stratified", 3, 0.25, 0.0, 5)
    b = Assigner("stratified", 3, 0.25, 0.0, 5)
    whole = a.assign(y)
    parts = np.concatenate([b.assign(y[i:i + 333]) for i in range(0, len(y), 333)])
    assert np.array_equal(whole, parts)
