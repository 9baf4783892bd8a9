"""Build the configured estimator, check its parameters up front, and seed each worker.

The operator gave every worker the same `random_state`, so P workers grew P
copies of the same trees on IID data. Here each worker gets its own seed
derived from the base seed, unless the spec pins one per worker.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, is_classifier, is_regressor

from shardfit.errors import SpecError


def import_class(module: str, name: str, where: str = "model") -> type:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise SpecError(f"{where}.module: cannot import '{module}' ({exc})") from None
    cls = getattr(mod, name, None)
    if cls is None:
        raise SpecError(f"{where}.class: '{module}' has no class '{name}'")
    if not inspect.isclass(cls):
        raise SpecError(f"{where}.class: '{module}.{name}' is not a class")
    if not (hasattr(cls, "fit") and hasattr(cls, "predict") and hasattr(cls, "get_params")):
        raise SpecError(f"{where}.class: '{module}.{name}' is not a scikit-learn estimator (needs fit, predict, get_params)")
    return cls


def estimator_kind(cls_or_est: Any) -> str:
    """'classifier' or 'regressor', by scikit-learn's own tags."""
    est = cls_or_est() if inspect.isclass(cls_or_est) else cls_or_est
    if is_classifier(est):
        return "classifier"
    if is_regressor(est):
        return "regressor"
    raise SpecError(f"model.class: {type(est).__name__} is neither a classifier nor a regressor")


def worker_params(model: dict, index: int, n_parts: int, seed: int) -> dict[str, Any]:
    """Parameters for worker `index`: base params, tree budget, per-worker overrides, own seed."""
    params = dict(model["parameters"])
    overrides = (model.get("per_worker") or [{}] * n_parts)[index] if model.get("per_worker") else {}
    if model.get("tree_budget") == "total" and "n_estimators" in params and "n_estimators" not in overrides:
        total = int(params["n_estimators"])
        params["n_estimators"] = total // n_parts + (1 if index < total % n_parts else 0)
        if params["n_estimators"] < 1:
            raise SpecError(f"model.parameters.n_estimators: {total} trees cannot be split over {n_parts} partitions")
    params.update(overrides)
    if "random_state" not in overrides:
        base = params.get("random_state")
        base = seed if base is None else base
        if isinstance(base, int):
            ss = np.random.SeedSequence([int(base), index])
            params["random_state"] = int(ss.generate_state(1)[0] % (2**31 - 1))
    return params


def build(model: dict, params: dict[str, Any] | None = None, where: str = "model") -> BaseEstimator:
    """Instantiate and validate with scikit-learn's own parameter checks, before any fit."""
    cls = import_class(model["module"], model["class"], where)
    params = dict(model["parameters"]) if params is None else params
    try:
        valid = cls().get_params(deep=False)
    except Exception:  # noqa: BLE001 - estimators with required args: skip the name check
        valid = None
    if valid is not None:
        for key in params:
            if key not in valid:
                import difflib

                close = difflib.get_close_matches(key, list(valid), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise SpecError(f"{where}.parameters.{key}: not a parameter of {model['class']}{hint}")
    try:
        est = cls(**params)
    except TypeError as exc:
        raise SpecError(f"{where}.parameters: {exc}") from None
    validate = getattr(est, "_validate_params", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, TypeError) as exc:
            msg = str(exc).strip().splitlines()[0]
            raise SpecError(f"{where}.parameters: {msg}") from None
    return est


def tree_count(est: Any) -> int | None:
    trees = getattr(est, "estimators_", None)
    return len(trees) if isinstance(trees, list) else None
