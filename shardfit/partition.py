"""Split a source into holdout, calibration and P partitions in one streaming pass.

Each chunk is assigned row by row and appended to one `.npy` writer per
output, so peak memory is one chunk plus P small buffers whatever the data
size. The foreach then carries only small descriptors (URIs, row and class
counts), never arrays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shardfit.data import Encoders, Source, Unit
from shardfit.errors import DataError
from shardfit.storage import LocalStorage, Storage

NPY_HEADER_LEN = 128  # fixed, so the final shape can be written in place


class NpyAppender:
    """Append rows to a valid `.npy` file whose length is unknown until close."""

    def __init__(self, path: str, dtype: np.dtype, ncols: int | None):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.ncols = ncols
        self.rows = 0
        self._fh = open(path, "wb")
        self._fh.write(self._header())

    def _header(self) -> bytes:
        shape = (self.rows,) if self.ncols is None else (self.rows, self.ncols)
        d = f"{{'descr': {self.dtype.str!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
        pad = NPY_HEADER_LEN - 10 - len(d) - 1
        if pad < 0:
            raise ValueError("npy header too long")
        body = (d + " " * pad + "\n").encode("latin1")
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body

    def append(self, block: np.ndarray) -> None:
        if len(block):
            self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).data)  # a view, not a bytes copy
            self.rows += len(block)

    def close(self) -> int:
        self._fh.seek(0)
        self._fh.write(self._header())
        self._fh.close()
        return os.path.getsize(self.path)


class _Target:
    """One output (a partition, the holdout or the calibration slice) being written."""

    def __init__(self, folder: str, stem: str, ncols: int, y_dtype: np.dtype):
        self.stem = stem
        self.X = NpyAppender(os.path.join(folder, f"{stem}.X.npy"), np.float32, ncols)
        self.y = NpyAppender(os.path.join(folder, f"{stem}.y.npy"), y_dtype, None)
        self.class_counts: dict[Any, int] = {}

    def append(self, X: np.ndarray, y: np.ndarray, classification: bool) -> None:
        self.X.append(X)
        self.y.append(y)
        if classification and len(y):
            for v, c in _counts(y).items():
                self.class_counts[v] = self.class_counts.get(v, 0) + c

    def close(self) -> dict:
        nbytes = self.X.close() + self.y.close()
        return {"rows": self.X.rows, "bytes": nbytes, "class_counts": self.class_counts}


class Progress:
    """Prints rows done and rows/s at most every `every` seconds."""

    def __init__(self, label: str, every: float = 5.0, stream=None):
        self.label, self.every = label, every
        self.stream = stream or sys.stdout
        self.start = self.last = time.monotonic()
        self.rows = 0

    def update(self, n: int) -> None:
        self.rows += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.emit()

    def emit(self, final: bool = False) -> None:
        dt = max(time.monotonic() - self.start, 1e-9)
        word = "done" if final else "so far"
        print(f"{self.label}: {self.rows:,} rows {word}, {self.rows / dt:,.0f} rows/s", file=self.stream, flush=True)


class Assigner:
    """Decides, row by row, where each row goes. Reproducible from the seed alone.

    shuffle: one IID uniform draw per row; the random stream does not depend on chunk sizes.
    stratified: per class, deterministic error-diffusion for holdout/calibration
    and round-robin from a seeded offset over partitions, so every partition's
    count of every class is within one row of the others.
    """

    HOLDOUT, CALIBRATION = -1, -2

    def __init__(self, mode: str, n_parts: int, test_size: float, cal_size: float, seed: int):
        self.mode, self.P = mode, n_parts
        self.test, self.cal = test_size, cal_size
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
        self.seed = seed
        self.seen: dict[Any, int] = {}  # stratified: rows seen per class
        self.train_seen: dict[Any, int] = {}
        self.offsets: dict[Any, int] = {}

    def assign(self, y: np.ndarray) -> np.ndarray:
        if self.mode == "stratified":
            return self._stratified(y)
        # One uniform per row decides everything: below test_size the holdout, then the
        # calibration slice, and the rest of [0, 1) split evenly into the P partitions.
        u = self.rng.random(len(y))
        held = self.test + self.cal
        out = ((u - held) * (self.P / (1.0 - held))).astype(np.int8)  # P <= 100 fits
        np.minimum(out, self.P - 1, out=out)
        out[u < held] = self.CALIBRATION
        out[u < self.test] = self.HOLDOUT
        return out

    def _offset(self, cls: Any) -> int:
        if cls not in self.offsets:
            ss = np.random.SeedSequence([self.seed, 0x57A7, abs(hash(str(cls))) % (2**32)])
            self.offsets[cls] = int(np.random.default_rng(ss).integers(self.P))
        return self.offsets[cls]

    def _stratified(self, y: np.ndarray) -> np.ndarray:
        out = np.empty(len(y), dtype=np.int64)
        for cls in np.unique(y).tolist():
            idx = np.flatnonzero(y == cls)
            k0 = self.seen.get(cls, 0)
            k = np.arange(k0, k0 + len(idx))
            self.seen[cls] = k0 + len(idx)
            hold = np.floor((k + 1) * self.test) > np.floor(k * self.test)
            calc = (np.floor((k + 1) * (self.test + self.cal)) > np.floor(k * (self.test + self.cal))) & ~hold
            train = ~(hold | calc)
            t0 = self.train_seen.get(cls, 0)
            ntr = int(train.sum())
            self.train_seen[cls] = t0 + ntr
            dest = np.empty(len(idx), dtype=np.int64)
            dest[hold] = self.HOLDOUT
            dest[calc] = self.CALIBRATION
            dest[train] = (self._offset(cls) + t0 + np.arange(ntr)) % self.P
            out[idx] = dest
        return out


def _counts(y: np.ndarray) -> dict[Any, int]:
    """Class counts; bincount when labels are small non-negative integers (the common case)."""
    if y.dtype.kind in "iu" and len(y) and y.min() >= 0 and y.max() < 1_000_000:
        c = np.bincount(y)
        nz = np.flatnonzero(c)
        return dict(zip(nz.tolist(), c[nz].tolist(), strict=True))
    vals, c = np.unique(y, return_counts=True)
    return dict(zip(vals.tolist(), c.tolist(), strict=True))


class _Buffers:
    """Two reusable gather buffers (column-major, then row-major), so chunks do not page-fault fresh ones."""

    def __init__(self) -> None:
        self.cols = np.empty((0, 0), dtype=np.float32)
        self.rows = np.empty((0, 0), dtype=np.float32)

    def get(self, ncols: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.cols.shape[0] != ncols or self.cols.shape[1] < n:
            self.cols = np.empty((ncols, n), dtype=np.float32)
            self.rows = np.empty((n, ncols), dtype=np.float32)
        return self.cols[:, :n], self.rows[:n]


def scatter(
    cols: list[np.ndarray], y: np.ndarray, dest: np.ndarray, rows: np.ndarray | None, buffers: _Buffers
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Split one chunk by destination: yields (dest, row-major X, y) per destination present.

    One stable sort groups the rows (on int8 keys numpy's stable sort is a radix
    sort); each column is gathered by that order into a column-major buffer, and
    one transpose makes rows already grouped by destination. `rows` limits the
    scatter to those row indices (the `files` mode writes only held-out rows).
    The yielded X is a view into a reused buffer: write it before the next chunk.
    """
    keys = (dest if rows is None else dest[rows]).astype(np.int8, copy=False)
    order = np.argsort(keys, kind="stable")
    if rows is not None:
        order = rows[order]
    grouped, X = buffers.get(len(cols), len(order))
    for j, c in enumerate(cols):
        np.take(c, order, out=grouped[j])
    X[...] = grouped.T
    ys = y[order]
    sizes = np.bincount(keys.astype(np.int64) - Assigner.CALIBRATION)
    lo = 0
    for i, size in enumerate(sizes.tolist()):
        if size:
            yield i + Assigner.CALIBRATION, X[lo:lo + size], ys[lo:lo + size]
            lo += size


def prefetch(chunks: Iterator, depth: int = 2) -> Iterator:
    """Read the next chunks in a thread while this one is scattered and written.

    Parquet/CSV decoding and file writes release the GIL, so on two cores this
    overlaps I/O with work; memory stays bounded by `depth` extra chunks.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def unit_mask(seed: int, unit_index: int, n: int, start: int, test_size: float, cal_size: float) -> np.ndarray:
    """For `files` partitioning: 0 train, -1 holdout, -2 calibration, for rows [start, start+n) of a unit.

    A pure function of (seed, unit, row), so the partition step (which writes the
    holdout) and the train task (which reads the unit in place) agree exactly.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF11E, unit_index]))
    if start:
        rng.random(start)  # advance: random() streams do not depend on chunking
    u = rng.random(n)
    out = np.zeros(n, dtype=np.int64)
    out[u < test_size + cal_size] = Assigner.CALIBRATION
    out[u < test_size] = Assigner.HOLDOUT
    return out


def _labels_dtype(classification: bool) -> np.dtype:
    return np.dtype(np.int64) if classification else np.dtype(np.float64)


def partition(
    spec: dict,
    storage: Storage,
    prefix: str,
    classification: bool,
    progress_every: float = 5.0,
) -> dict:
    """Stream the source once; write partitions under `prefix` in `storage`; return the plan."""
    data = spec["data"]
    mode = data["partitioning"]
    cal_size = spec["merger"]["calibration_size"]
    source = Source(data)
    units = source.units
    if mode == "files":
        n_parts = data["partitions"] or len(units)
        if len(units) < n_parts:
            raise DataError(f"data.partitions: {n_parts} partitions but only {len(units)} input files")
        groups = [list(range(i, len(units), n_parts)) for i in range(n_parts)]
    else:
        n_parts = data["partitions"]
        groups = []
    progress = Progress("partition", every=progress_every)
    started = time.monotonic()
    y_dtype = _labels_dtype(classification)
    with _workdir(storage, prefix) as folder:
        targets: dict[int, _Target] = {}

        def target(key: int, stem: str, ncols: int) -> _Target:
            if key not in targets:
                targets[key] = _Target(folder, stem, ncols, y_dtype)
            return targets[key]

        unit_stats: list[dict] = [{"rows": 0, "counts": {}} for _ in units]
        buffers = _Buffers()
        assigner = Assigner(mode if mode != "files" else "shuffle", n_parts, data["test_size"], cal_size, data["seed"])
        # One read-ahead thread for all units, so it is not drained and refilled at every file.
        chunks = ((ui, unit, cols, y) for ui, unit in enumerate(units) for cols, y in source.iter_columns(unit))
        for ui, unit, cols, y in prefetch(chunks):
            st = unit_stats[ui]
            if classification and y.dtype.kind == "f":
                if not np.all(np.mod(y, 1) == 0):
                    raise DataError(f"data.target: {unit.name} has non-integer labels for a classifier")
                y = y.astype(np.int64)
            if not classification:
                y = y.astype(np.float64)
            if mode == "files":
                dest = unit_mask(data["seed"], ui, len(y), st["rows"], data["test_size"], cal_size)
                train_rows = dest == 0
                counts = st["counts"]
                if classification:
                    for v, c in _counts(y[train_rows]).items():
                        counts[v] = counts.get(v, 0) + c
                else:
                    counts["rows"] = counts.get("rows", 0) + int(train_rows.sum())
                rows = np.flatnonzero(~train_rows)  # train rows stay in the input file, not rewritten
            else:
                dest = assigner.assign(y)
                rows = None
            for key, X, ys in scatter(cols, y, dest, rows, buffers):
                stem = {Assigner.HOLDOUT: "holdout", Assigner.CALIBRATION: "calibration"}.get(key, f"part-{key:04d}")
                target(key, stem, len(cols)).append(X, ys, classification)
            st["rows"] += len(y)
            progress.update(len(y))
        progress.emit(final=True)
        ncols = len(source.feature_names or [])
        stats = {key: t.close() for key, t in targets.items()}
        for t in targets.values():
            for suffix in ("X.npy", "y.npy"):
                name = f"{t.stem}.{suffix}"
                storage.upload_file(f"{prefix}/{name}", os.path.join(folder, name))
    seconds = time.monotonic() - started

    def desc(key: int, stem: str) -> dict:
        st = stats.get(key, {"rows": 0, "bytes": 0, "class_counts": {}})
        return {
            "kind": "rewritten",
            "X": storage.url(f"{prefix}/{stem}.X.npy"),
            "y": storage.url(f"{prefix}/{stem}.y.npy"),
            "rows": st["rows"],
            "bytes": st["bytes"],
            "class_counts": _plain(st["class_counts"]),
            "ncols": ncols,
        }

    parts = []
    if mode == "files":
        for _p, members in enumerate(groups):
            rows = sum(unit_stats[i]["counts"].get("rows", 0) for i in members) if not classification else sum(
                sum(unit_stats[i]["counts"].values()) for i in members)
            cc: dict[Any, int] = {}
            if classification:
                for i in members:
                    for k, v in unit_stats[i]["counts"].items():
                        cc[k] = cc.get(k, 0) + v
            parts.append({
                "kind": "files",
                "units": [{"index": i, "uris": units[i].uris, "fmt": units[i].fmt} for i in members],
                "rows": rows,
                "bytes": 0,
                "class_counts": _plain(cc),
                "ncols": ncols,
            })
    else:
        parts = [desc(p, f"part-{p:04d}") for p in range(n_parts)]
    for i, part in enumerate(parts):
        part["index"] = i
        part["of"] = n_parts
        if part["rows"] == 0:
            raise DataError(f"data.partitions: partition {i} of {n_parts} is empty after the holdout split; use fewer partitions")
    holdout = desc(Assigner.HOLDOUT, "holdout")
    if holdout["rows"] == 0:
        raise DataError("data.test_size: the holdout is empty; use more data or a larger test_size")
    calibration = desc(Assigner.CALIBRATION, "calibration") if cal_size > 0 else None
    total_rows = sum(s["rows"] for s in unit_stats)
    classes = None
    if classification:
        seen: set = set()
        for t in stats.values():
            seen.update(t["class_counts"])
        if mode == "files":
            for st in unit_stats:
                seen.update(st["counts"])
        classes = sorted(seen)
    label_values = source.encoders.label_values()
    return {
        "prefix": storage.url(prefix),
        "storage": storage.uri,
        "key_prefix": prefix,
        "partitioning": mode,
        "calibration_size": cal_size,
        "partitions": parts,
        "holdout": holdout,
        "calibration": calibration,
        "classes": classes,
        "label_values": None if label_values is None else label_values.tolist(),
        "feature_names": source.feature_names,
        "categories": source.encoders.columns,
        "rows": total_rows,
        "seconds": seconds,
        "rows_per_second": total_rows / max(seconds, 1e-9),
    }


def _plain(counts: dict) -> dict:
    """JSON-friendly class counts: keys as str, in sorted order."""
    return {str(k): int(v) for k, v in sorted(counts.items())}


@contextlib.contextmanager
def _workdir(storage: Storage, prefix: str) -> Iterator[str]:
    """Write locally first: into place for a local store, into a temp dir before upload to GCS."""
    if isinstance(storage, LocalStorage):
        folder = storage.url(prefix)
        os.makedirs(folder, exist_ok=True)
        yield folder
    else:
        folder = tempfile.mkdtemp(prefix="shardfit-part-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def open_array(storage: Storage, key: str) -> tuple[np.ndarray, Callable[[], None]]:
    """Memory-map a stored `.npy` (from a local copy on GCS); returns (array, cleanup)."""
    stack = contextlib.ExitStack()
    path = stack.enter_context(storage.local_copy(key))
    return np.load(path, mmap_mode="r", allow_pickle=False), stack.close


def load_part(desc: dict, plan: dict, data_spec: dict, storage: Storage) -> tuple[np.ndarray, np.ndarray, list[Callable[[], None]]]:
    """Read one partition (memory-mapped where possible). Errors name the partition."""
    where = f"partition {desc.get('index', '?')} of {desc.get('of', '?')}"
    try:
        if desc["kind"] == "files":
            encoders = Encoders(columns={k: dict(v) for k, v in plan["categories"].items()})
            if plan.get("label_values") is not None:
                encoders.labels = {v: i for i, v in enumerate(plan["label_values"])}
            source = Source(data_spec, encoders=encoders)
            xs, ys = [], []
            for u in desc["units"]:
                unit = Unit(u["uris"], u["fmt"])
                start = 0
                for X, y in source.iter_chunks(unit):
                    keep = unit_mask(data_spec["seed"], u["index"], len(y), start,
                                     data_spec["test_size"], plan.get("calibration_size", 0.0)) == 0
                    xs.append(X[keep])
                    ys.append(y[keep])
                    start += len(y)
            return np.concatenate(xs), np.concatenate(ys), []
        key_prefix = plan["key_prefix"]
        stem = os.path.basename(desc["X"])[: -len(".X.npy")]
        X, c1 = open_array(storage, f"{key_prefix}/{stem}.X.npy")
        y, c2 = open_array(storage, f"{key_prefix}/{stem}.y.npy")
    except DataError as exc:
        raise DataError(f"{where}: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or missing file: say which
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{where}: cannot read {desc.get('X') or desc.get('units')}: {type(exc).__name__}: {first}") from None
    if X.ndim != 2 or len(X) != len(y) or len(X) != desc["rows"]:
        raise DataError(f"{where}: {desc['X']} is corrupt: shape {X.shape}, {len(y)} labels, expected {desc['rows']} rows")
    return X, y, [c1, c2]


def iter_array_chunks(desc: dict, plan: dict, storage: Storage, chunk_rows: int = 200_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a rewritten slice (holdout, calibration) in chunks, never all at once."""
    X, y, cleanups = load_part(desc, plan, {}, storage)
    try:
        for s in range(0, len(X), chunk_rows):
            yield np.asarray(X[s:s + chunk_rows]), np.asarray(y[s:s + chunk_rows])
    finally:
        for c in cleanups:
            c()
