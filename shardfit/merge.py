"""Find the configured merge function, check its signature, and snapshot its source.

A merger is a module on the path (`merger.module`) or a `.py` file
(`merger.path`, local or gs://), like the operator's `merge_list_rfs.py`. Its
source travels with the run as an artifact, so the exact merge code is
versioned with the model and reaches a remote join step.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any

from shardfit.errors import SpecError
from shardfit.storage import NotFound, read_uri


def snapshot(merger: dict) -> dict:
    """The merger's source code, sha256 and origin, resolved now (at `start`)."""
    if merger.get("path"):
        try:
            source = read_uri(merger["path"]).decode("utf-8")
        except NotFound:
            raise SpecError(f"merger.path: {merger['path']} not found") from None
        except UnicodeDecodeError:
            raise SpecError(f"merger.path: {merger['path']} is not a UTF-8 Python file") from None
        origin = merger["path"]
        module = _module_name(merger["path"])
    else:
        module = merger["module"]
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise SpecError(f"merger.module: cannot import '{module}' ({exc})") from None
        try:
            source = inspect.getsource(mod)
        except (OSError, TypeError):
            source = ""
        origin = getattr(mod, "__file__", module)
    return {
        "module": module,
        "function": merger["function"],
        "origin": str(origin),
        "source": source,
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
        "from_file": bool(merger.get("path")),
    }


def _module_name(path: str) -> str:
    base = path.rstrip("/").rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".py") else base


def resolve(snap: dict) -> Callable[..., Any]:
    """The callable itself: from the snapshot's source for files, by import for modules."""
    if snap["from_file"]:
        mod = types.ModuleType(snap["module"])
        mod.__file__ = snap["origin"]
        try:
            exec(compile(snap["source"], snap["origin"], "exec"), mod.__dict__)  # noqa: S102 - user's own merger
        except Exception as exc:  # noqa: BLE001
            raise SpecError(f"merger.path: {snap['origin']} fails to load: {type(exc).__name__}: {exc}") from None
    else:
        mod = importlib.import_module(snap["module"])
    fn = getattr(mod, snap["function"], None)
    if fn is None:
        raise SpecError(f"merger.function: '{snap['module']}' has no '{snap['function']}'")
    if not callable(fn):
        raise SpecError(f"merger.function: '{snap['module']}.{snap['function']}' is not callable")
    _check_signature(fn, snap)
    return fn


def _check_signature(fn: Callable, snap: dict) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind([])
    except TypeError:
        raise SpecError(
            f"merger.function: '{snap['module']}.{snap['function']}{sig}' must accept the list of models as its one positional argument"
        ) from None


def context(spec: dict, plan: dict, records: list[dict], storage) -> dict[str, Any]:
    """What a merger may use besides the models: global classes, partition sizes, calibration slice."""
    import numpy as np

    from shardfit.evaluate import decode_labels
    from shardfit.partition import iter_array_chunks

    classes = None
    if plan.get("classes") is not None:
        classes = decode_labels(np.asarray(plan["classes"]), plan)
    calibration = None
    desc = plan.get("calibration")
    if desc and desc["rows"]:
        xs, ys = zip(*iter_array_chunks(desc, plan, storage), strict=True)
        calibration = (np.concatenate(xs), decode_labels(np.concatenate(ys), plan))
    return {
        "classes": classes,
        "weights": [r["rows"] for r in records],
        "params": dict(spec["merger"]["params"]),
        "calibration": calibration,
    }


def accepts_context(fn: Callable) -> bool:
    """Whether the merger takes keyword context (classes, weights, calibration...)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


def call(fn: Callable, models: list, **context: Any) -> Any:
    """Call with context when the merger accepts it; the operator's `combine(models)` otherwise."""
    return fn(models, **context) if accepts_context(fn) else fn(models)


def supported_kinds(fn: Callable) -> tuple[str, ...]:
    return tuple(getattr(fn, "estimator_types", ("classifier", "regressor")))
