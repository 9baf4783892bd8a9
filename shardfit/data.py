"""Data sources read in chunks, so no step ever holds the whole dataset.

A source is a list of *units*, each read as a stream of chunks. A chunk is
its feature columns, each a 1-D float32 array (forests compute in float32
anyway), and its labels. Columns rather than rows because Arrow hands them
over without a copy, and the partition step gathers each column by its sort
order and transposes once per output; `iter_chunks` gives row-major X for
everyone else. A unit is one file, one operator pickle pair (`train_<n>.pkl`
+ `label_<n>.pkl`), or the in-memory result of a demo callable.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shardfit.errors import DataError
from shardfit.storage import expand, is_gcs, local_file

FORMAT_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".npy": "npy",
    ".npz": "npz",
    ".pkl": "pickle",
    ".pickle": "pickle",
}
READER_MODULES = {
    "parquet": ("pyarrow.parquet", "pyarrow.compute"),
    "csv": ("pyarrow.csv", "pyarrow.compute"),
}
PICKLE_X = re.compile(r"^(?:train|training)_(\d+)\.pkl$")
PICKLE_Y = re.compile(r"^label_(\d+)\.pkl$")


@dataclass
class Unit:
    """The smallest piece of input: read whole by one reader, never split across readers."""

    uris: list[str]
    fmt: str

    @property
    def name(self) -> str:
        return ", ".join(os.path.basename(u) for u in self.uris)


@dataclass
class Encoders:
    """Ordinal codes for declared categorical columns and for non-numeric labels.

    Codes are assigned in order of first appearance during the single partition
    pass and carried in the plan, so every reader encodes identically.
    """

    columns: dict[str, dict[str, int]] = field(default_factory=dict)
    labels: dict[str, int] | None = None

    def encode_column(self, name: str, values: np.ndarray) -> np.ndarray:
        table = self.columns.setdefault(name, {})
        out = np.empty(len(values), dtype=np.float32)
        for i, v in enumerate(values):
            if v is None:
                out[i] = np.nan
                continue
            code = table.get(v)
            if code is None:
                code = table[v] = len(table)
            out[i] = code
        return out

    def encode_labels(self, values: np.ndarray) -> np.ndarray:
        if self.labels is None:
            self.labels = {}
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            code = self.labels.get(v)
            if code is None:
                code = self.labels[v] = len(self.labels)
            out[i] = code
        return out

    def label_values(self) -> np.ndarray | None:
        if self.labels is None:
            return None
        return np.array(sorted(self.labels, key=self.labels.get), dtype=object)


class Source:
    """A `data:` section made readable: its units, feature names and chunk reader."""

    def __init__(self, data: dict, encoders: Encoders | None = None):
        self.data = data
        self.spec_source = data["source"]
        self.chunk_rows = int(data["chunk_rows"])
        self.target = data["target"]
        self.features = data["features"]
        self.categorical = set(data["categorical"])
        self.encoders = encoders or Encoders()
        self._callable = _callable_name(self.spec_source)
        self.feature_names: list[str] | None = None
        self.units = self._discover()
        for module in {m for u in self.units for m in READER_MODULES.get(u.fmt, ())}:
            importlib.import_module(module)  # once, here, rather than inside the first chunk's read

    # -- discovery -------------------------------------------------------
    def _discover(self) -> list[Unit]:
        if self._callable:
            return [Unit([self.spec_source], "callable")]
        src = self.spec_source
        if not is_gcs(src) and not any(c in src for c in "*?[") and not os.path.exists(src):
            raise DataError(f"data.source: {src} does not exist")
        files = expand(src)
        if not files:
            raise DataError(f"data.source: {src} matched no files")
        fmt = self.data["format"]
        if fmt == "pickle" or (fmt == "auto" and all(_suffix_fmt(f) == "pickle" for f in files)):
            return _pickle_units(files, src)
        units = []
        for f in files:
            f_fmt = fmt if fmt != "auto" else _suffix_fmt(f)
            if f_fmt is None:
                if os.path.basename(f).startswith(("_", ".")):  # _SUCCESS, .crc and friends
                    continue
                raise DataError(f"data.source: {f}: unknown file type (set data.format)")
            units.append(Unit([f], f_fmt))
        if not units:
            raise DataError(f"data.source: {src} matched no data files")
        kinds = {u.fmt for u in units}
        if len(kinds) > 1:
            raise DataError(f"data.source: {src} mixes formats {sorted(kinds)}")
        return units

    # -- reading ---------------------------------------------------------
    def iter_chunks(self, unit: Unit) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(X float32 row-major, y) chunks of one unit, at most `chunk_rows` rows each."""
        for cols, y in self.iter_columns(unit):
            yield to_rows(cols, len(y)), y

    def iter_columns(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        """(feature columns, y) chunks of one unit; columns may be read-only views of Arrow memory."""
        reader = {
            "callable": self._read_callable,
            "parquet": self._read_parquet,
            "csv": self._read_csv,
            "npy": self._read_npy,
            "npz": self._read_npz,
            "pickle": self._read_pickle,
        }[unit.fmt]
        try:
            yield from reader(unit)
        except (DataError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - name the file, keep one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise DataError(f"data.source: cannot read {unit.name}: {type(exc).__name__}: {first}") from None

    def _set_names(self, names: list[str], unit: Unit) -> None:
        if self.feature_names is None:
            self.feature_names = list(names)
        elif list(names) != self.feature_names:
            raise DataError(f"data.source: {unit.name} has columns {names}, expected {self.feature_names}")

    def _finish(self, X: np.ndarray | list[np.ndarray], y: np.ndarray, unit: Unit) -> tuple[list[np.ndarray], np.ndarray]:
        """Check labels, encode string ones; X (2-D, or already columns) becomes float32 columns."""
        y = np.asarray(y)
        if y.ndim != 1:
            y = y.reshape(len(y), -1)
            if y.shape[1] != 1:
                raise DataError(f"data.target: {unit.name}: labels must be one column, got shape {y.shape}")
            y = y[:, 0]
        if isinstance(X, np.ndarray):
            if len(X) != len(y):
                raise DataError(f"data.source: {unit.name}: {len(X)} feature rows but {len(y)} labels")
            X = list(X.T)
        if y.dtype.kind in "OUS":
            if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in y):
                raise DataError(f"data.target: {unit.name} has missing labels")
            y = self.encoders.encode_labels(y)
        elif y.dtype.kind == "f":
            bad = ~np.isfinite(y)
            if bad.any():
                raise DataError(
                    f"data.target: {unit.name} has NaN or inf labels ({int(bad.sum())} rows, first at row {int(np.argmax(bad))})"
                )
        elif y.dtype.kind == "b":
            y = y.astype(np.int64)
        return [np.asarray(c, dtype=np.float32) for c in X], y

    def _read_callable(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        fn = load_callable(self.spec_source)
        out = fn(**self.data["params"])
        if hasattr(out, "data") and hasattr(out, "target"):
            X, y = out.data, out.target
        elif isinstance(out, tuple) and len(out) >= 2:
            X, y = out[0], out[1]
        else:
            raise DataError(f"data.source: {self.spec_source} must return (X, y), got {type(out).__name__}")
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        X = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if X.ndim != 2:
            raise DataError(f"data.source: {self.spec_source} returned X with shape {X.shape}, expected 2-D")
        if X.dtype.kind not in "biuf":
            raise DataError(f"data.source: {self.spec_source} returned non-numeric features ({X.dtype})")
        self._set_names(names or [f"x{i}" for i in range(X.shape[1])], unit)
        for start in range(0, len(X), self.chunk_rows):
            yield self._finish(X[start:start + self.chunk_rows], y[start:start + self.chunk_rows], unit)

    def _columns(self, names: list[str], unit: Unit) -> list[str]:
        if self.target not in names:
            raise DataError(f"data.target: column '{self.target}' not in {unit.name} (columns: {', '.join(names[:20])})")
        if self.features is not None:
            for col in self.features:
                if col not in names:
                    raise DataError(f"data.features: column '{col}' not in {unit.name}")
            return list(self.features)
        return [n for n in names if n != self.target]

    def _batch_columns(self, batch, cols: list[str], unit: Unit) -> tuple[list[np.ndarray], np.ndarray]:
        import pyarrow as pa
        import pyarrow.compute as pc

        out = []
        for col in cols:
            arr = batch.column(batch.schema.get_field_index(col))
            t = arr.type
            if pa.types.is_dictionary(t):
                arr = arr.cast(t.value_type)
                t = arr.type
            if col in self.categorical:
                out.append(self.encoders.encode_column(col, np.asarray(arr.to_pylist(), dtype=object)))
            elif pa.types.is_floating(t) and not arr.null_count:
                out.append(arrow_to_numpy(arr))  # zero-copy; float64 is narrowed in _finish
            elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
                out.append(arrow_to_numpy(pc.fill_null(arr.cast(pa.float32()), np.nan)))  # nulls become NaN
            else:
                raise DataError(
                    f"data.features: column '{col}' in {unit.name} is not numeric ({t}); "
                    "list it under data.categorical to ordinal-encode it"
                )
        yarr = batch.column(batch.schema.get_field_index(self.target))
        if pa.types.is_dictionary(yarr.type):
            yarr = yarr.cast(yarr.type.value_type)
        if yarr.null_count:
            raise DataError(f"data.target: {unit.name} has NaN or missing labels ({yarr.null_count} rows)")
        if pa.types.is_string(yarr.type) or pa.types.is_large_string(yarr.type):
            y = np.asarray(yarr.to_pylist(), dtype=object)
        elif pa.types.is_integer(yarr.type) or pa.types.is_floating(yarr.type):
            y = arrow_to_numpy(yarr)
        else:
            y = yarr.to_numpy(zero_copy_only=False)
        return out, y

    def _read_parquet(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        import pyarrow.parquet as pq

        with local_file(unit.uris[0]) as path:
            pf = pq.ParquetFile(path, pre_buffer=False)
            names = pf.schema_arrow.names
            cols = self._columns(names, unit)
            self._set_names(cols, unit)
            for batch in pf.iter_batches(batch_size=self.chunk_rows, columns=cols + [self.target]):
                yield self._finish(*self._batch_columns(batch, cols, unit), unit)

    def _read_csv(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        import pyarrow.csv as pcsv

        opts = dict(self.data["csv"])
        delimiter = opts.pop("delimiter", ",")
        block = int(opts.pop("block_size", 8 << 20))
        with local_file(unit.uris[0]) as path:
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=block, **opts),
                parse_options=pcsv.ParseOptions(delimiter=delimiter),
                convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
            )
            names = reader.schema.names
            cols = self._columns(names, unit)
            self._set_names(cols, unit)
            for batch in reader:
                for start in range(0, batch.num_rows, self.chunk_rows):
                    part = batch.slice(start, self.chunk_rows)
                    yield self._finish(*self._batch_columns(part, cols, unit), unit)

    def _target_index(self, ncols: int, unit: Unit) -> int:
        if self.target in ("label", "-1", "last"):
            return ncols - 1
        try:
            idx = int(self.target)
        except ValueError:
            raise DataError(f"data.target: for .npy files give a column index, got '{self.target}'") from None
        if not -ncols <= idx < ncols:
            raise DataError(f"data.target: column {idx} out of range for {unit.name} ({ncols} columns)")
        return idx % ncols

    def _read_npy(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        with local_file(unit.uris[0]) as path:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.ndim != 2:
                raise DataError(f"data.source: {unit.name} must be a 2-D array, got shape {arr.shape}")
            if arr.dtype.kind not in "biuf":
                raise DataError(f"data.features: {unit.name} is not numeric ({arr.dtype})")
            t = self._target_index(arr.shape[1], unit)
            keep = [j for j in range(arr.shape[1]) if j != t]
            self._set_names([f"x{j}" for j in keep], unit)
            for start in range(0, arr.shape[0], self.chunk_rows):
                block = np.asarray(arr[start:start + self.chunk_rows])
                yield self._finish(block[:, keep], block[:, t], unit)

    def _read_npz(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        with local_file(unit.uris[0]) as path, np.load(path, allow_pickle=False) as npz:
            if "X" not in npz.files or "y" not in npz.files:
                raise DataError(f"data.source: {unit.name} must hold arrays 'X' and 'y' (has {npz.files})")
            X, y = npz["X"], npz["y"]
            if X.ndim != 2 or X.dtype.kind not in "biuf":
                raise DataError(f"data.features: {unit.name}: X must be a 2-D numeric array")
            self._set_names([f"x{j}" for j in range(X.shape[1])], unit)
            for start in range(0, X.shape[0], self.chunk_rows):
                yield self._finish(X[start:start + self.chunk_rows], y[start:start + self.chunk_rows], unit)

    def _read_pickle(self, unit: Unit) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        # The operator's own format: trusted, user-owned pickles, one pair per partition.
        loaded = []
        for uri in unit.uris:
            with local_file(uri) as path, open(path, "rb") as fh:
                loaded.append(pickle.load(fh))  # noqa: S301
        X, y = loaded
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        X = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise DataError(f"data.features: {os.path.basename(unit.uris[0])} must hold a 2-D numeric array")
        self._set_names(names or [f"x{j}" for j in range(X.shape[1])], unit)
        for start in range(0, len(X), self.chunk_rows):
            yield self._finish(X[start:start + self.chunk_rows], y[start:start + self.chunk_rows], unit)


def arrow_to_numpy(arr) -> np.ndarray:
    """A read-only numpy view of a null-free Arrow integer or float array.

    Not `Array.to_numpy()`: its first call imports pandas whenever pandas is
    installed, about 0.2 s in every partition and train process.
    """
    dtype = np.dtype(arr.type.to_pandas_dtype())
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def to_rows(cols: list[np.ndarray], n: int) -> np.ndarray:
    """Row-major float32 X from feature columns (what estimators and `.npy` partitions want)."""
    X = np.empty((n, len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        X[:, j] = c
    return X


def _suffix_fmt(path: str) -> str | None:
    base = path.rsplit("/", 1)[-1].lower()
    for suffix, fmt in FORMAT_BY_SUFFIX.items():
        if base.endswith(suffix):
            return fmt
    return None


def _pickle_units(files: list[str], src: str) -> list[Unit]:
    xs: dict[int, str] = {}
    ys: dict[int, str] = {}
    for f in files:
        base = f.rsplit("/", 1)[-1]
        if m := PICKLE_X.match(base):
            xs[int(m.group(1))] = f
        elif m := PICKLE_Y.match(base):
            ys[int(m.group(1))] = f
    if not xs:
        raise DataError(f"data.source: no train_<n>.pkl or training_<n>.pkl files in {src}")
    units = []
    for n in sorted(xs):
        if n not in ys:
            raise DataError(f"data.source: {xs[n]} has no matching label_{n}.pkl")
        units.append(Unit([xs[n], ys[n]], "pickle"))
    extra = sorted(set(ys) - set(xs))
    if extra:
        raise DataError(f"data.source: label_{extra[0]}.pkl has no matching train_{extra[0]}.pkl")
    return units


def _callable_name(source: str) -> bool:
    if is_gcs(source) or "/" in source or os.path.exists(source):
        return False
    return bool(re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", source))


def load_callable(ref: str) -> Any:
    module, _, name = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise DataError(f"data.source: cannot import module '{module}' ({exc})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise DataError(f"data.source: '{module}' has no callable '{name}'")
    return fn
