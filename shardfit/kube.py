"""Turn the spec's `compute.kubernetes` section into `@kubernetes` on train (and join).

Applied by a FlowMutator at flow-construction time, so the decorator exists
only when the spec asks for it: a spec without `compute` runs locally, and
`--with kubernetes` keeps working as Metaflow documents it (it only decorates
steps that have no `@kubernetes` yet, so the spec's values win on train/join).

The same mutator also puts the `shardfit` and `mergers` packages into
Metaflow's code package, so pods run the code of the launching checkout
rather than whatever copy the image happens to hold (see `add_to_package`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metaflow import FlowMutator

RESOURCE_KEYS = ("cpu", "memory", "disk", "gpu", "shared_memory")
POD_KEYS = ("image", "namespace", "service_account", "node_selector", "tolerations",
            "secrets", "labels", "annotations", "image_pull_policy")
# Limits = requests: memory over the spec is an OOM kill, not a noisy neighbour, and a
# CPU limit is what joblib/loky read (cgroup quota) to size `n_jobs=-1` to the pod.
QOS = "Guaranteed"
# Packages the pods must import from the code package (flows/train.py imports both).
SHIPPED_PACKAGES = ("shardfit", "mergers")


def _plain(value: Any) -> Any:
    """ConfigValue -> plain dicts/lists, as decorators expect."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _quantity(value: Any) -> Any:
    """2.0 -> 2, so Kubernetes sees cpu "2" (the spec parser reads every cpu as float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def kubernetes_kwargs(k8s: dict, step: str) -> dict[str, Any] | None:
    """The exact `@kubernetes(...)` arguments for a step, or None when it stays local."""
    resources = k8s.get(step)
    if resources is None:
        return None
    kwargs: dict[str, Any] = {"qos": QOS}
    for key in POD_KEYS:
        if k8s.get(key) is not None:
            kwargs[key] = _plain(k8s[key])
    for key in RESOURCE_KEYS:
        if resources.get(key) is not None:
            kwargs[key] = _quantity(resources[key])
    if isinstance(kwargs.get("node_selector"), dict):
        kwargs["node_selector"] = {str(k): str(v) for k, v in kwargs["node_selector"].items()}
    return kwargs


def package_dirs(names: tuple[str, ...] = SHIPPED_PACKAGES) -> dict[str, Path]:
    """Where each shipped package's sources live, however it was installed.

    Uses the import system rather than Metaflow's distribution metadata: a stale
    `shardfit.egg-info` (SOURCES.txt from an old `pip install -e .`) or an editable
    install that set the packages up as namespaces made Metaflow ship only part of
    `shardfit`, and the pods then failed to import the rest.
    """
    found: dict[str, Path] = {}
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        for location in spec.submodule_search_locations or []:
            if os.path.isfile(os.path.join(location, "__init__.py")):
                found[name] = Path(location).resolve()
                break
    return found


def package_files(names: tuple[str, ...] = SHIPPED_PACKAGES) -> Iterator[tuple[str, str]]:
    """(file on disk, path in the code package) for every .py file of the shipped packages."""
    for name, root in sorted(package_dirs(names).items()):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
            for filename in sorted(filenames):
                if filename.endswith(".py"):
                    path = Path(dirpath, filename)
                    yield str(path), str(Path(name, path.relative_to(root)))


class compute_from_spec(FlowMutator):  # noqa: N801 - used as a lower-case decorator, like Metaflow's own
    """Adds `@kubernetes` to `train` (and `join` when given) from config `spec`."""

    def pre_mutate(self, mutable_flow) -> None:
        configs = dict(mutable_flow.configs)
        spec = _plain(configs.get("spec")) or {}
        k8s = (spec.get("compute") or {}).get("kubernetes")
        if not k8s:
            return
        for name, step in mutable_flow.steps:
            kwargs = kubernetes_kwargs(k8s, name)
            if kwargs is not None:
                step.add_decorator("kubernetes", deco_kwargs=kwargs)

    def add_to_package(self) -> Iterator[tuple[str, str, Any]]:
        """Ship shardfit/ and mergers/ next to the flow file in the code package.

        As USER_CONTENT (the mechanism of Metaflow's own `@package_sources`) they land
        beside train.py, i.e. first on the pod's sys.path, ahead of any copy in the image.
        """
        from metaflow.packaging_sys import ContentType

        for path, arcname in package_files():
            yield path, arcname, ContentType.USER_CONTENT
