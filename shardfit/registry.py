"""A versioned model registry on a local folder or GCS, with the same layout on both.

    <location>/<name>/<version>/model.joblib   (or model.skops)
    <location>/<name>/<version>/manifest.json
    <location>/<name>/latest.json               {"version": ...}

Version objects are created create-only (GCS `if_generation_match=0`), so a
version is never overwritten. `latest.json` moves by compare-and-swap on its
generation, only after both version objects exist, and never backwards.
Every load checks the model's sha256 against its manifest before
deserialising anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
import re
from typing import Any

from shardfit.errors import IntegrityError, RegistryError, VersionExistsError
from shardfit.storage import NotFound, PreconditionFailed, Storage, open_storage

MANIFEST = "manifest.json"
LATEST = "latest.json"
MODEL_FILE = {"joblib": "model.joblib", "skops": "model.skops"}
# Top-level modules whose types a skops model may contain; anything else is refused.
SKOPS_TRUSTED_ROOTS = ("sklearn", "numpy", "scipy", "mergers", "builtins", "collections")
# Any version id a user may name: no path separators, so a lookup never leaves <name>/.
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def new_version(run_id: str | int | None = None, now: dt.datetime | None = None) -> str:
    """Unique and sortable: a UTC timestamp to the microsecond, then the run id."""
    now = now or dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{run_id}" if run_id is not None else stamp


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("scikit-learn", "numpy", "joblib", "metaflow", "skops", "shardfit"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def serialize(model: Any, fmt: str = "joblib", compress: int = 3) -> bytes:
    if fmt == "joblib":
        import joblib

        buf = io.BytesIO()
        joblib.dump(model, buf, compress=compress)
        return buf.getvalue()
    if fmt == "skops":
        import skops.io as sio

        return sio.dumps(model)
    raise RegistryError(f"output.format: unknown model format {fmt!r}")


def deserialize(data: bytes, fmt: str) -> Any:
    if fmt == "joblib":
        import joblib

        return joblib.load(io.BytesIO(data))
    if fmt == "skops":
        import skops.io as sio

        untrusted = sio.get_untrusted_types(data=data)
        refused = [t for t in untrusted if t.split(".")[0] not in SKOPS_TRUSTED_ROOTS]
        if refused:
            raise RegistryError(f"skops model holds types outside the allowlist: {', '.join(sorted(refused))}")
        return sio.loads(data, trusted=list(untrusted))
    raise RegistryError(f"manifest: unknown model format {fmt!r}")


def _json(obj: Any) -> bytes:
    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        if hasattr(o, "item"):
            return o.item()
        if isinstance(o, set | tuple):
            return list(o)
        return str(o)

    return json.dumps(obj, indent=2, sort_keys=True, default=default).encode()


def _check_name(name: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", name or ""):
        raise RegistryError(f"model name {name!r} is not a valid registry name")


def model_uri(location: str | Storage, name: str, version: str, fmt: str = "joblib") -> str:
    """Where `publish` will put a version's model file (known before publishing)."""
    storage = location if isinstance(location, Storage) else open_storage(location)
    return storage.url(f"{name}/{version}/{MODEL_FILE[fmt]}")


def publish(
    location: str | Storage,
    name: str,
    model: Any,
    *,
    metrics: dict | None = None,
    spec: dict | None = None,
    pathspec: str | None = None,
    fmt: str = "joblib",
    compress: int = 3,
    version: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Write a new immutable version, then move `latest` to it. Returns the manifest."""
    storage = location if isinstance(location, Storage) else open_storage(location)
    _check_name(name)
    version = version or new_version()
    _check_version(version)
    blob = serialize(model, fmt, compress)
    model_file = MODEL_FILE[fmt]
    manifest = {
        "name": name,
        "version": version,
        "file": model_file,
        "format": fmt,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        "metrics": metrics or {},
        "spec": spec or {},
        "pathspec": pathspec,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "libraries": library_versions(),
        **(extra or {}),
    }
    base = f"{name}/{version}"
    try:
        storage.write_bytes(f"{base}/{model_file}", blob, if_absent=True)
        storage.write_bytes(f"{base}/{MANIFEST}", _json(manifest), if_absent=True)
    except PreconditionFailed:
        raise VersionExistsError(f"{storage.url(base)}: version {version} already exists; versions are immutable") from None
    move_latest(storage, name, version)
    manifest["uri"] = storage.url(f"{base}/{model_file}")
    return manifest


def move_latest(storage: Storage, name: str, version: str, attempts: int = 50) -> bool:
    """Compare-and-swap `latest.json` to `version` unless a newer version already holds it."""
    key = f"{name}/{LATEST}"
    for _ in range(attempts):
        data, gen = storage.read_with_generation(key)
        if data is not None:
            try:
                current = json.loads(data).get("version", "")
            except ValueError:
                current = ""
            if current and current >= version:
                return False
        body = _json({"version": version, "updated_at": dt.datetime.now(dt.UTC).isoformat()})
        try:
            storage.compare_and_swap(key, body, gen)
            return True
        except PreconditionFailed:
            continue
    raise RegistryError(f"{storage.url(key)}: could not move latest after {attempts} attempts")


def _check_version(version: str) -> None:
    if not VERSION_RE.match(version or "") or ".." in version:
        raise RegistryError(f"version {version!r} is not a valid version id")


def resolve_version(storage: Storage, name: str, version: str = "latest") -> str:
    _check_name(name)
    if version != "latest":
        _check_version(version)
        return version
    try:
        data = storage.read_bytes(f"{name}/{LATEST}")
    except NotFound:
        raise RegistryError(f"{storage.url(name)}: no published version of '{name}'") from None
    return json.loads(data)["version"]


def read_manifest(location: str | Storage, name: str, version: str = "latest") -> dict:
    storage = location if isinstance(location, Storage) else open_storage(location)
    version = resolve_version(storage, name, version)
    try:
        manifest = json.loads(storage.read_bytes(f"{name}/{version}/{MANIFEST}"))
    except NotFound:
        raise RegistryError(f"{storage.url(f'{name}/{version}')}: no such version") from None
    manifest["uri"] = storage.url(f"{name}/{version}/{manifest['file']}")
    return manifest


def fetch_verified(location: str | Storage, name: str, version: str = "latest") -> tuple[bytes, dict]:
    """The model's bytes and manifest, after checking sha256 and size."""
    storage = location if isinstance(location, Storage) else open_storage(location)
    manifest = read_manifest(storage, name, version)
    key = f"{name}/{manifest['version']}/{manifest['file']}"
    try:
        blob = storage.read_bytes(key)
    except NotFound:
        raise RegistryError(f"{storage.url(key)}: model file missing") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != manifest["sha256"] or len(blob) != manifest["size"]:
        raise IntegrityError(
            f"{storage.url(key)}: sha256 {digest[:12]}… does not match manifest {manifest['sha256'][:12]}…; refusing to load"
        )
    return blob, manifest


def load_model(location: str, name: str, version: str = "latest") -> Any:
    """Load a published model, refusing any whose bytes do not match its manifest."""
    blob, manifest = fetch_verified(location, name, version)
    return deserialize(blob, manifest["format"])


def find_run_version(location: str | Storage, name: str, pathspec: str) -> dict | None:
    """The manifest a run already published, if any: lets a retried join publish only once."""
    storage = location if isinstance(location, Storage) else open_storage(location)
    for v in reversed(list_versions(storage, name)):
        if v["pathspec"] == pathspec:
            return read_manifest(storage, name, v["version"])
    return None


def list_versions(location: str | Storage, name: str) -> list[dict]:
    """Every version of `name`, oldest first, with its metrics; `latest` is flagged."""
    _check_name(name)
    storage = location if isinstance(location, Storage) else open_storage(location)
    try:
        latest = resolve_version(storage, name)
    except RegistryError:
        latest = None
    versions = sorted({k.split("/")[1] for k in storage.list(name) if k.count("/") == 2 and k.endswith(MANIFEST)})
    out = []
    for v in versions:
        m = json.loads(storage.read_bytes(f"{name}/{v}/{MANIFEST}"))
        out.append({
            "version": v,
            "created_at": m.get("created_at"),
            "metrics": m.get("metrics", {}).get("merged", m.get("metrics", {})),
            "sha256": m.get("sha256"),
            "size": m.get("size"),
            "format": m.get("format"),
            "pathspec": m.get("pathspec"),
            "latest": v == latest,
        })
    return out
