"""One small storage layer: a local folder or a GCS bucket behind the same calls.

Keys are '/'-separated paths under the storage root. Two primitives carry the
registry's guarantees: `write_bytes(..., if_absent=True)` (create-only, GCS
`if_generation_match=0`) and `compare_and_swap` on an object's generation.
Authentication on GCS is Application Default Credentials only; nothing here
ever logs or stores a credential.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob as globlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator

from shardfit.errors import ShardfitError


class PreconditionFailed(ShardfitError):
    """A create-only write hit an existing object, or a compare-and-swap lost the race."""

    headline = "Precondition failed"


class NotFound(ShardfitError):
    headline = "Not found"


def is_gcs(uri: str) -> bool:
    return str(uri).startswith("gs://")


def split_gcs(uri: str) -> tuple[str, str]:
    """'gs://bucket/a/b' -> ('bucket', 'a/b')."""
    rest = uri[len("gs://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ShardfitError(f"{uri}: no bucket in GCS URI")
    return bucket, prefix.strip("/")


class Storage(ABC):
    """A root location; every key is relative to it."""

    uri: str

    def url(self, key: str = "") -> str:
        key = key.strip("/")
        return f"{self.uri.rstrip('/')}/{key}" if key else self.uri

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None: ...

    @abstractmethod
    def upload_file(self, key: str, path: str, *, if_absent: bool = False) -> None: ...

    @abstractmethod
    def download_file(self, key: str, path: str) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys under prefix, recursively, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def read_with_generation(self, key: str) -> tuple[bytes | None, int]:
        """Content and generation; (None, 0) when absent."""

    @abstractmethod
    def compare_and_swap(self, key: str, data: bytes, generation: int) -> None:
        """Write only if the object's generation is still `generation` (0: absent)."""

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[str]:
        """A local file path holding the object (the file itself when local)."""
        with tempfile.TemporaryDirectory(prefix="shardfit-") as tmp:
            path = os.path.join(tmp, os.path.basename(key) or "object")
            self.download_file(key, path)
            yield path

    def check_writable(self) -> None:
        """Write and delete a probe object, so a bad output fails before training."""
        key = f".shardfit-probe-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self.write_bytes(key, b"ok")
            self.delete(key)
        except Exception as exc:  # noqa: BLE001 - any failure means not writable
            raise ShardfitError(f"output: {self.uri} is not writable ({type(exc).__name__}: {_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class LocalStorage(Storage):
    def __init__(self, root: str):
        root = root[len("file://"):] if root.startswith("file://") else root
        self.root = os.path.abspath(root)
        self.uri = self.root

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *[p for p in key.split("/") if p])

    def url(self, key: str = "") -> str:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise NotFound(f"{self._path(key)}: not found") from None

    def _install(self, tmp: str, dest: str, if_absent: bool) -> None:
        if if_absent:
            try:
                os.link(tmp, dest)  # atomic create-only
            except FileExistsError:
                raise PreconditionFailed(f"{dest}: already exists") from None
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, dest)

    def _tmp_beside(self, dest: str) -> str:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".tmp-")
        os.close(fd)
        return tmp

    def write_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        dest = self._path(key)
        tmp = self._tmp_beside(dest)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._install(tmp, dest, if_absent)

    def upload_file(self, key: str, path: str, *, if_absent: bool = False) -> None:
        dest = self._path(key)
        if os.path.abspath(path) == dest:
            return
        tmp = self._tmp_beside(dest)
        shutil.copyfile(path, tmp)
        self._install(tmp, dest, if_absent)

    def download_file(self, key: str, path: str) -> None:
        src = self._path(key)
        if not os.path.exists(src):
            raise NotFound(f"{src}: not found")
        shutil.copyfile(src, path)

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[str]:
        path = self._path(key)
        if not os.path.exists(path):
            raise NotFound(f"{path}: not found")
        yield path

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if os.path.isfile(base):
            return [prefix.strip("/")]
        out = []
        for dirpath, _, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-") or name.endswith(".lock"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                out.append(rel.replace(os.sep, "/"))
        return sorted(out)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def delete_prefix(self, prefix: str) -> int:
        n = len(self.list(prefix))
        shutil.rmtree(self._path(prefix), ignore_errors=True)
        return n

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        dest = self._path(key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _generation(self, dest: str) -> int:
        try:
            st = os.stat(dest)
        except FileNotFoundError:
            return 0
        return st.st_mtime_ns ^ (st.st_ino << 1) or 1

    def read_with_generation(self, key: str) -> tuple[bytes | None, int]:
        dest = self._path(key)
        with self._locked(key):
            gen = self._generation(dest)
            if gen == 0:
                return None, 0
            with open(dest, "rb") as fh:
                return fh.read(), gen

    def compare_and_swap(self, key: str, data: bytes, generation: int) -> None:
        dest = self._path(key)
        with self._locked(key):
            current = self._generation(dest)
            if current != generation:
                raise PreconditionFailed(f"{dest}: changed since read (generation {current} != {generation})")
            self.write_bytes(key, data)


class GCSStorage(Storage):
    """gs://bucket/prefix through google-cloud-storage and Application Default Credentials."""

    def __init__(self, uri: str, client=None):
        self.bucket_name, self.prefix = split_gcs(uri)
        self.uri = f"gs://{self.bucket_name}" + (f"/{self.prefix}" if self.prefix else "")
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = gcs_client()
        return self._client

    @property
    def bucket(self):
        return self.client.bucket(self.bucket_name)

    def _name(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def _blob(self, key: str):
        return self.bucket.blob(self._name(key))

    def read_bytes(self, key: str) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            return self._blob(key).download_as_bytes()
        except gexc.NotFound:
            raise NotFound(f"{self.url(key)}: not found") from None

    def write_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        from google.api_core import exceptions as gexc

        kwargs = {"if_generation_match": 0} if if_absent else {}
        try:
            self._blob(key).upload_from_string(data, **kwargs)
        except gexc.PreconditionFailed:
            raise PreconditionFailed(f"{self.url(key)}: already exists") from None

    def upload_file(self, key: str, path: str, *, if_absent: bool = False) -> None:
        from google.api_core import exceptions as gexc

        kwargs = {"if_generation_match": 0} if if_absent else {}
        try:
            self._blob(key).upload_from_filename(path, **kwargs)
        except gexc.PreconditionFailed:
            raise PreconditionFailed(f"{self.url(key)}: already exists") from None

    def download_file(self, key: str, path: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            self._blob(key).download_to_filename(path)
        except gexc.NotFound:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise NotFound(f"{self.url(key)}: not found") from None

    def exists(self, key: str) -> bool:
        return self._blob(key).exists()

    def list(self, prefix: str = "") -> list[str]:
        # GCS prefixes are plain string prefixes: 'tiny' also matches 'tiny-2/...'.
        # Keep only the object itself or what lies under it as a folder, as on disk.
        full = self._name(prefix)
        strip = (self.prefix + "/") if self.prefix else ""
        names = [b.name for b in self.client.list_blobs(self.bucket_name, prefix=full)]
        folder = full.rstrip("/") + "/" if full else ""
        keep = [n for n in names if n == full or n.startswith(folder)]
        return sorted(n[len(strip):] for n in keep if n.startswith(strip) and not n.endswith("/"))

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as gexc

        with contextlib.suppress(gexc.NotFound):
            self._blob(key).delete()

    def read_with_generation(self, key: str) -> tuple[bytes | None, int]:
        from google.api_core import exceptions as gexc

        blob = self.bucket.get_blob(self._name(key))
        if blob is None:
            return None, 0
        try:
            data = blob.download_as_bytes(if_generation_match=blob.generation)
        except (gexc.PreconditionFailed, gexc.NotFound):
            return self.read_with_generation(key)  # changed between stat and read
        return data, int(blob.generation)

    def compare_and_swap(self, key: str, data: bytes, generation: int) -> None:
        from google.api_core import exceptions as gexc

        try:
            self._blob(key).upload_from_string(
                data, content_type="application/json", if_generation_match=generation
            )
        except gexc.PreconditionFailed:
            raise PreconditionFailed(f"{self.url(key)}: changed since read") from None


_clients: dict[tuple, object] = {}


def gcs_client():
    """A storage client from ADC, one per process, thread and endpoint.

    Against an emulator (STORAGE_EMULATOR_HOST) no credentials are needed. Without
    a project in the environment the client still works for objects (buckets are
    never listed or created here), so a missing project is not an error.
    """
    import threading

    from google.cloud import storage as gcs

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    key = (os.getpid(), threading.get_ident(), emulator)
    client = _clients.get(key)
    if client is not None:
        return client
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        client = gcs.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "shardfit-test"),
                            credentials=AnonymousCredentials())
    else:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, project = google.auth.default(scopes=gcs.Client.SCOPE)
        except DefaultCredentialsError:
            raise ShardfitError(
                "GCS: no Application Default Credentials: set GOOGLE_APPLICATION_CREDENTIALS to a "
                "service account key file, run `gcloud auth application-default login`, "
                "or use Workload Identity on GKE"
            ) from None
        client = gcs.Client(project=project or None, credentials=credentials)
    _clients[key] = client
    return client


def open_storage(uri: str) -> Storage:
    """Storage rooted at a local folder or a gs:// URI."""
    return GCSStorage(uri) if is_gcs(uri) else LocalStorage(uri)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Object-name glob with the local (recursive) glob's meaning.

    '*' and '?' stop at '/', '**/' spans folders: `gs://b/data/*.parquet`
    matches `data/a.parquet` but not `data/old/a.parquet`, as on disk.
    """
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:[^/]*/)*"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end + 1
                continue
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out, re.DOTALL)


def expand(uri: str) -> list[str]:
    """Files named by a path, folder or glob, locally or on GCS, sorted."""
    if is_gcs(uri):
        bucket, prefix = split_gcs(uri)
        client = gcs_client()
        if any(c in prefix for c in "*?["):
            fixed = re.split(r"[*?\[]", prefix, maxsplit=1)[0]
            pattern = _glob_regex(prefix)
            names = [b.name for b in client.list_blobs(bucket, prefix=fixed)]
            return sorted(f"gs://{bucket}/{n}" for n in names if pattern.fullmatch(n))
        names = [b.name for b in client.list_blobs(bucket, prefix=prefix)]
        if prefix in names:
            return [f"gs://{bucket}/{prefix}"]
        folder = prefix.rstrip("/") + "/" if prefix else ""
        # As for a local folder: every file below it, skipping hidden ones and folder markers.
        return sorted(
            f"gs://{bucket}/{n}" for n in names
            if n.startswith(folder) and not n.endswith("/") and not n.rsplit("/", 1)[-1].startswith(".")
        )
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    if any(c in path for c in "*?["):
        return sorted(p for p in globlib.glob(path, recursive=True) if os.path.isfile(p))
    if os.path.isdir(path):
        return sorted(
            os.path.join(dp, f) for dp, _, fs in os.walk(path) for f in fs if not f.startswith(".")
        )
    return [path] if os.path.isfile(path) else []


@contextlib.contextmanager
def local_file(uri: str) -> Iterator[str]:
    """A local path for a file URI, downloading from GCS to a temporary file when needed."""
    if is_gcs(uri):
        bucket, name = split_gcs(uri)
        with GCSStorage(f"gs://{bucket}").local_copy(name) as path:
            yield path
    else:
        yield uri[len("file://"):] if uri.startswith("file://") else uri


def read_uri(uri: str) -> bytes:
    if is_gcs(uri):
        bucket, name = split_gcs(uri)
        return GCSStorage(f"gs://{bucket}").read_bytes(name)
    try:
        with open(uri, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise NotFound(f"{uri}: not found") from None
