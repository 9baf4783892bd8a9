"""Turn the spec's `compute.kubernetes` section into `@kubernetes` on train (and join).

Applied by a FlowMutator at flow-construction time, so the decorator exists
only when the spec asks for it: a spec without `compute` runs locally, and
`--with kubernetes` keeps working as Metaflow documents it.
"""

from __future__ import annotations

from typing import Any

from metaflow import FlowMutator

RESOURCE_KEYS = ("cpu", "memory", "disk", "gpu", "shared_memory")
POD_KEYS = ("image", "namespace", "service_account", "node_selector", "tolerations",
            "secrets", "labels", "annotations", "image_pull_policy")


def _plain(value: Any) -> Any:
    """ConfigValue -> plain dicts/lists, as decorators expect."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def kubernetes_kwargs(k8s: dict, step: str) -> dict[str, Any] | None:
    """The exact `@kubernetes(...)` arguments for a step, or None when it stays local."""
    resources = k8s.get(step)
    if resources is None:
        return None
    kwargs: dict[str, Any] = {}
    for key in POD_KEYS:
        if k8s.get(key) is not None:
            kwargs[key] = _plain(k8s[key])
    for key in RESOURCE_KEYS:
        if resources.get(key) is not None:
            kwargs[key] = resources[key]
    if isinstance(kwargs.get("node_selector"), dict):
        kwargs["node_selector"] = {str(k): str(v) for k, v in kwargs["node_selector"].items()}
    return kwargs


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
