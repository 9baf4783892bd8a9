"""`python flows/train.py run --spec FILE`: the spec as a Metaflow Config, from a run option.

Metaflow Configs are top-level options (`--config spec FILE`, before `run`),
because they must exist before decorators are applied: that is what lets the
spec add `@kubernetes`. Users think of the spec as an argument of `run`, so
`--spec FILE` anywhere on the command line is moved to `--config spec FILE`.
`resume` reuses the original run's spec, as Metaflow does for every Config.

Bad input stops here with one line naming the field or file, before Metaflow
starts a run: no task runs and nothing is published.
"""

from __future__ import annotations

import os
import sys

from shardfit.errors import ShardfitError

COMMANDS_THAT_RUN = ("run",)


def rewrite_argv(argv: list[str]) -> tuple[list[str], str | None]:
    """Move `--spec FILE` to the top-level `--config spec FILE`; return (argv, spec path)."""
    out: list[str] = [argv[0]]
    spec_path = None
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--spec" and i + 1 < len(argv):
            spec_path = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--spec="):
            spec_path = arg.split("=", 1)[1]
            i += 1
            continue
        out.append(arg)
        i += 1
    if spec_path is None:
        for j, arg in enumerate(out[:-2]):
            if arg == "--config" and out[j + 1] == "spec":
                spec_path = out[j + 2]
        return out, spec_path
    if "resume" in out:
        print("shardfit: resume reuses the original run's spec; ignoring --spec", file=sys.stderr)
        return out, None
    return [out[0], "--config", "spec", spec_path, *out[1:]], spec_path


def _datastore(argv: list[str]) -> str:
    for j, arg in enumerate(argv):
        if arg == "--datastore" and j + 1 < len(argv):
            return argv[j + 1]
        if arg.startswith("--datastore="):
            return arg.split("=", 1)[1]
    from metaflow.metaflow_config import DEFAULT_DATASTORE

    return os.environ.get("METAFLOW_DEFAULT_DATASTORE", DEFAULT_DATASTORE)


def precheck(argv: list[str], spec_path: str | None) -> None:
    """Validate the spec before Metaflow starts; full checks for `run`."""
    from shardfit import spec as spec_mod

    if spec_path is None:
        return
    spec = spec_mod.load(spec_path)
    k8s = spec["compute"].get("kubernetes")
    if k8s and _datastore(argv) == "local":
        raise ShardfitError(
            f"{spec_path}: compute.kubernetes needs a cloud datastore: run with --datastore=gs "
            "and set METAFLOW_DATASTORE_SYSROOT_GS=gs://<bucket>/metaflow"
        )
    if k8s and _command_name(argv) == "argo-workflows":
        namespace = os.environ.get("METAFLOW_KUBERNETES_NAMESPACE", "default")
        if k8s.get("namespace") and k8s["namespace"] != namespace:
            raise ShardfitError(
                f"{spec_path}: compute.kubernetes.namespace is {k8s['namespace']!r}: set "
                f"METAFLOW_KUBERNETES_NAMESPACE={k8s['namespace']} (Argo runs a workflow in one namespace)"
            )
        if not os.environ.get("METAFLOW_KUBERNETES_CONTAINER_IMAGE"):
            raise ShardfitError(
                f"{spec_path}: set METAFLOW_KUBERNETES_CONTAINER_IMAGE={k8s['image']} "
                "(Argo runs start, partition and end as pods too)"
            )
    if _command_name(argv) in COMMANDS_THAT_RUN:
        from shardfit import validate

        try:
            validate.check(spec)
        except ShardfitError as exc:
            raise ShardfitError(f"{spec_path}: {exc.message}") from None


def _command_name(argv: list[str]) -> str | None:
    for name in ("run", "resume", "argo-workflows", "package", "show", "check", "card", "kubernetes", "step", "init"):
        if name in argv[1:]:
            return name
    return None


def main(argv: list[str] | None = None) -> None:
    """Rewrite argv in place and pre-check the spec; exit 2 with one line on bad input."""
    argv = list(sys.argv if argv is None else argv)
    new_argv, spec_path = rewrite_argv(argv)
    # Metaflow re-invokes this file for every task with --config already resolved: skip work there.
    if _command_name(new_argv) in ("step", "init"):
        sys.argv[:] = new_argv
        return
    try:
        if spec_path is None and _command_name(new_argv) == "run":
            raise ShardfitError("run needs a spec: python flows/train.py run --spec FILE")
        precheck(new_argv, spec_path)
    except ShardfitError as exc:
        print(f"shardfit: error: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv[:] = new_argv
