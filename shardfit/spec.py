"""The training spec: parse YAML, map the operator's CR, check structure, fill defaults.

Only structure is checked here (names, types, ranges). Whether modules import,
parameters are valid or paths exist is `shardfit.validate`'s job, so this module
stays cheap enough to run inside Metaflow's Config parser.
"""

from __future__ import annotations

import ast
import copy
import difflib
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from shardfit.errors import SpecError

# Metaflow refuses a foreach wider than --max-num-splits (100 by default).
MAX_PARTITIONS = 100
DEFAULT_CHUNK_ROWS = 100_000
PARTITIONINGS = ("shuffle", "stratified", "files")
TREE_BUDGETS = ("per_worker", "total")
FORMATS = ("joblib", "skops")
DATA_FORMATS = ("auto", "parquet", "csv", "npy", "npz", "pickle")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class Field:
    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    fields: dict[str, Field] | None = None  # nested mapping schema
    choices: tuple[Any, ...] | None = None
    check: Any = None  # callable(value) -> error message or None
    doc: str = ""
    open_keys: bool = False  # mapping with free-form keys (e.g. parameters)
    items: Field | None = None  # schema of list items


def _between_0_1(v: float) -> str | None:
    return None if 0 < v < 1 else f"must be in (0, 1), got {v}"


def _ge(n: int):
    def check(v: int) -> str | None:
        return None if v >= n else f"must be >= {n}, got {v}"

    return check


def _partitions(v: int) -> str | None:
    if v < 1:
        return f"must be >= 1, got {v}"
    if v > MAX_PARTITIONS:
        return f"must be <= {MAX_PARTITIONS} (Metaflow's foreach split limit), got {v}"
    return None


def _calibration(v: float) -> str | None:
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v}"


def _name(v: str) -> str | None:
    return None if NAME_RE.match(v) else f"must match {NAME_RE.pattern}, got {v!r}"


NUM = (int, float)
RESOURCES = {
    "cpu": Field(NUM, doc="CPU cores requested (and limited to)"),
    "memory": Field((int,), doc="memory in MB"),
    "disk": Field((int,), doc="ephemeral disk in MB"),
    "gpu": Field((int,), doc="GPUs"),
    "shared_memory": Field((int,), doc="/dev/shm size in MB"),
}

SCHEMA: dict[str, Field] = {
    "name": Field((str,), required=True, check=_name, doc="model name; versions are published under it"),
    "description": Field((str,), default=""),
    "data": Field(
        (dict,),
        required=True,
        fields={
            "source": Field((str,), required=True, doc="'module:function' returning (X, y), or a path/glob/gs:// URI"),
            "params": Field((dict,), default={}, open_keys=True, doc="keyword arguments for a callable source"),
            "format": Field((str,), default="auto", choices=DATA_FORMATS),
            "target": Field((str,), default="label", doc="label column of tabular files"),
            "features": Field((list,), default=None, items=Field((str,)), doc="feature columns to use (default: all but target)"),
            "categorical": Field((list,), default=[], items=Field((str,)), doc="non-numeric columns to ordinal-encode"),
            "test_size": Field((float,), default=0.25, check=_between_0_1, doc="holdout fraction kept out of every partition"),
            "partitions": Field((int,), default=None, check=_partitions, doc="number of train tasks (default: files for 'files', else 4)"),
            "partitioning": Field((str,), default="shuffle", choices=PARTITIONINGS),
            "seed": Field((int,), default=0),
            "chunk_rows": Field((int,), default=DEFAULT_CHUNK_ROWS, check=_ge(1)),
            "keep_partitions": Field((bool,), default=False),
            "csv": Field((dict,), default={}, open_keys=True, doc="pyarrow.csv read options (delimiter, ...)"),
        },
    ),
    "model": Field(
        (dict,),
        required=True,
        fields={
            "module": Field((str,), required=True),
            "class": Field((str,), required=True),
            "parameters": Field((dict,), default={}, open_keys=True),
            "per_worker": Field((list,), default=None, items=Field((dict,), open_keys=True),
                                doc="one parameter override mapping per partition"),
            "tree_budget": Field((str,), default="per_worker", choices=TREE_BUDGETS),
        },
    ),
    "merger": Field(
        (dict,),
        default={"module": "mergers.forest", "function": "combine_forests"},
        fields={
            "module": Field((str,), default=None, doc="importable module holding the merge function"),
            "path": Field((str,), default=None, doc="a .py file (local or gs://) holding the merge function"),
            "function": Field((str,), required=True),
            "params": Field((dict,), default={}, open_keys=True, doc="extra keyword arguments for the merger"),
            "calibration_size": Field((float,), default=0.0, check=_calibration,
                                      doc="fraction held out of the partitions for stacking"),
        },
    ),
    "output": Field(
        (str, dict),
        default="./models",
        fields={
            "location": Field((str,), required=True),
            "format": Field((str,), default="joblib", choices=FORMATS),
            "compress": Field((int,), default=3, check=_ge(0)),
        },
    ),
    "compute": Field(
        (dict,),
        default={},
        fields={
            "kubernetes": Field(
                (dict,),
                default=None,
                fields={
                    "image": Field((str,), required=True),
                    "namespace": Field((str,), default=None),
                    "service_account": Field((str,), default=None),
                    "train": Field((dict,), default={}, fields=RESOURCES),
                    "join": Field((dict,), default=None, fields=RESOURCES),
                    "node_selector": Field((dict,), default=None, open_keys=True),
                    "tolerations": Field((list,), default=None, items=Field((dict,), open_keys=True)),
                    "secrets": Field((list,), default=None, items=Field((str,))),
                    "labels": Field((dict,), default=None, open_keys=True),
                    "annotations": Field((dict,), default=None, open_keys=True),
                    "image_pull_policy": Field((str,), default=None),
                },
            ),
            "retries": Field((int,), default=2, check=_ge(0)),
        },
    ),
}


def _closest(key: str, options: list[str]) -> str:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", dict: "mapping", list: "list", bool: "boolean"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_type(value: Any, f: Field, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) and bool not in f.types:
        raise SpecError(f"{where}: expected {_type_name(f.types)}, got boolean {value!r}")
    if float in f.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, f.types):
        raise SpecError(f"{where}: expected {_type_name(f.types)}, got {type(value).__name__} {value!r}")
    return value


def _validate(obj: dict, schema: dict[str, Field], prefix: str) -> dict:
    if not isinstance(obj, dict):
        raise SpecError(f"{prefix or 'spec'}: expected a mapping, got {type(obj).__name__}")
    for key in obj:
        if key not in schema:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise SpecError(f"{where}: unknown field{_closest(str(key), list(schema))}")
    out: dict[str, Any] = {}
    for key, f in schema.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in obj or obj[key] is None:
            if f.required:
                raise SpecError(f"{where}: required field is missing")
            out[key] = copy.deepcopy(f.default)
            if f.fields and isinstance(out[key], dict):
                out[key] = _validate(out[key], f.fields, where)
            continue
        value = _check_type(obj[key], f, where)
        if f.choices is not None and value not in f.choices:
            raise SpecError(f"{where}: must be one of {', '.join(map(str, f.choices))}, got {value!r}{_closest(str(value), [str(c) for c in f.choices])}")
        if f.check is not None:
            msg = f.check(value)
            if msg:
                raise SpecError(f"{where}: {msg}")
        if isinstance(value, dict) and f.fields:
            value = _validate(value, f.fields, where)
        elif isinstance(value, dict) and f.open_keys:
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise SpecError(f"{where}: keys must be strings, got {bad[0]!r}")
        elif isinstance(value, list) and f.items is not None:
            value = [_check_type(v, f.items, f"{where}[{i}]") for i, v in enumerate(value)]
        out[key] = value
    return out


def parse_parameter_string(text: str, where: str = "spec.model.parameters") -> dict[str, Any]:
    """Parse the operator's "a=1, b='x', c=None" safely: each value by ast.literal_eval, never eval."""
    params: dict[str, Any] = {}
    text = text.strip()
    if not text:
        return params
    parts, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    for part in parts:
        if not part.strip():
            continue
        if "=" not in part:
            raise SpecError(f"{where}: expected 'name=value', got {part.strip()!r}")
        key, raw = (s.strip() for s in part.split("=", 1))
        if not key.isidentifier():
            raise SpecError(f"{where}: {key!r} is not a parameter name")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            if raw.isidentifier():
                value = raw  # a bare word such as gini: read as a string
            else:
                raise SpecError(f"{where}: cannot parse value of {key!r}: {raw!r}") from None
        params[key] = value
    return params


def _is_local_bucket(bucket: str) -> bool:
    return os.path.isabs(bucket) or bucket.startswith(("./", "../", "file://"))


def cr_to_spec(cr: dict) -> dict:
    """Map the operator's `DistributedTraining` custom resource onto a shardfit spec."""
    body = cr.get("spec")
    if not isinstance(body, dict):
        raise SpecError("spec: a DistributedTraining resource needs a 'spec' mapping")
    allowed = {"name", "baseGcsBucket", "model", "image"}
    for key in body:
        if key not in allowed:
            raise SpecError(f"spec.{key}: unknown field{_closest(key, sorted(allowed))}")
    bucket = body.get("baseGcsBucket")
    if not isinstance(bucket, str) or not bucket:
        raise SpecError("spec.baseGcsBucket: required field is missing")
    model = body.get("model")
    if not isinstance(model, dict):
        raise SpecError("spec.model: required field is missing")
    for key in model:
        if key not in {"module", "class", "parameters", "merger"}:
            raise SpecError(f"spec.model.{key}: unknown field{_closest(key, ['module', 'class', 'parameters', 'merger'])}")
    params = model.get("parameters", "")
    if isinstance(params, str):
        params = parse_parameter_string(params)
    elif params is None:
        params = {}
    elif not isinstance(params, dict):
        raise SpecError(f"spec.model.parameters: expected a string or mapping, got {type(params).__name__}")
    merger = model.get("merger") or {}
    if not isinstance(merger, dict) or "module" not in merger or "function" not in merger:
        raise SpecError("spec.model.merger: needs 'module' and 'function'")
    workers = ((body.get("image") or {}).get("worker") or {}).get("number")
    if workers is None:
        raise SpecError("spec.image.worker.number: required field is missing")
    if _is_local_bucket(bucket):
        root = bucket[len("file://"):] if bucket.startswith("file://") else bucket
        root = root.rstrip("/")
    else:
        root = "gs://" + bucket.removeprefix("gs://").rstrip("/")
    name = body.get("name") or (cr.get("metadata") or {}).get("name")
    return {
        "name": name,
        "description": f"from DistributedTraining/{(cr.get('metadata') or {}).get('name', name)}",
        "data": {
            "source": f"{root}/data/",
            "format": "pickle",
            "partitioning": "files",
            "partitions": workers,
        },
        "model": {"module": model.get("module"), "class": model.get("class"), "parameters": params},
        "merger": {"path": f"{root}/{merger['module']}.py", "function": merger["function"]},
        "output": f"{root}/models",
    }


def resolve(raw: Any) -> dict:
    """Validate a parsed spec (or CR) and return it complete, with every default filled."""
    if not isinstance(raw, dict):
        raise SpecError(f"spec: expected a mapping at the top level, got {type(raw).__name__}")
    if raw.get("kind") == "DistributedTraining":
        raw = cr_to_spec(raw)
    spec = _validate(raw, SCHEMA, "")
    if isinstance(spec["output"], str):
        spec["output"] = _validate({"location": spec["output"]}, SCHEMA["output"].fields, "output")
    merger = spec["merger"]
    if bool(merger["module"]) == bool(merger["path"]):
        raise SpecError("merger: give exactly one of 'module' or 'path'")
    data = spec["data"]
    if data["partitions"] is None and data["partitioning"] != "files":
        data["partitions"] = 4
    per_worker = spec["model"]["per_worker"]
    if per_worker is not None and data["partitions"] is not None and len(per_worker) != data["partitions"]:
        raise SpecError(f"model.per_worker: has {len(per_worker)} entries for {data['partitions']} partitions")
    if data["test_size"] + merger["calibration_size"] >= 1:
        raise SpecError("merger.calibration_size: test_size + calibration_size must be < 1")
    return spec


def loads(text: str, source: str = "spec") -> dict:
    """Parse YAML text into a resolved spec; errors name `source`."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}:{where} invalid YAML: {problem}") from None
    try:
        return resolve(raw)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc.message}") from None


def load(path: str | os.PathLike) -> dict:
    """Read and resolve a spec file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpecError(f"{path}: spec file not found")
    if os.path.isdir(path):
        raise SpecError(f"{path}: is a folder, not a spec file")
    with open(path, encoding="utf-8") as fh:
        return loads(fh.read(), source=path)


def parse_config(text: str) -> dict:
    """Metaflow Config parser: the resolved spec becomes `self.spec` and drives decorators."""
    return loads(text)


def summary(spec: dict) -> list[tuple[str, str]]:
    """A short, printable view of a spec for logs and cards."""
    data, model, merger = spec["data"], spec["model"], spec["merger"]
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(model["parameters"].items()))
    return [
        ("name", spec["name"]),
        ("data", f"{data['source']} ({data['partitioning']}, P={data['partitions']}, test_size={data['test_size']})"),
        ("model", f"{model['module']}.{model['class']}({params})"),
        ("tree budget", model["tree_budget"]),
        ("merger", f"{merger['module'] or merger['path']}:{merger['function']}"),
        ("output", f"{spec['output']['location']} ({spec['output']['format']})"),
        ("compute", "kubernetes" if spec["compute"].get("kubernetes") else "local"),
    ]
