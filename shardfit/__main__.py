"""`python -m shardfit models list|show|pull`: look into a model registry without writing Python.

    python -m shardfit models list LOCATION NAME
    python -m shardfit models show LOCATION NAME [VERSION] [--spec]
    python -m shardfit models pull LOCATION NAME [VERSION] [--dest PATH]

LOCATION is a local folder or gs://bucket/prefix (ADC credentials). Every
failure is one line on stderr and exit status 2, so scripts can rely on it;
nothing here prints a credential or a token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from shardfit import registry
from shardfit.errors import ShardfitError

EXIT_ERROR = 2


def _size(n: Any) -> str:
    """Human-readable byte count; '-' when the manifest has none."""
    if not isinstance(n, int | float):
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _metrics(metrics: Any) -> str:
    """Only the scalar merged scores: the full per-partition record belongs to `show`."""
    if not isinstance(metrics, dict):
        return "-"
    parts = []
    for key, value in sorted(metrics.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        parts.append(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts) or "-"


def _created(stamp: Any) -> str:
    """ISO time to the second, in UTC: microseconds and '+00:00' only widen the table."""
    if not isinstance(stamp, str) or not stamp:
        return "-"
    text = stamp.split(".")[0].replace("+00:00", "")
    return text + "Z" if "T" in text and not text.endswith("Z") else text


def cmd_list(args: argparse.Namespace) -> int:
    rows = registry.list_versions(args.location, args.name)
    if not rows:
        raise ShardfitError(f"{args.location}: no published version of '{args.name}'")
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    table = [
        ("*" if r["latest"] else " ", r["version"], _created(r["created_at"]), _metrics(r["metrics"]),
         _size(r["size"]), "latest" if r["latest"] else "")
        for r in rows
    ]
    header = (" ", "VERSION", "CREATED", "METRICS", "SIZE", "")
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    manifest = registry.read_manifest(args.location, args.name, args.version)
    if not args.spec:
        manifest.pop("spec", None)
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def _destination(dest: str, file_name: str) -> str:
    """A folder (existing, or written with a trailing '/') gets the manifest's file name."""
    if dest.endswith(("/", os.sep)) or os.path.isdir(dest):
        os.makedirs(dest, exist_ok=True)
        return os.path.join(dest, file_name)
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise ShardfitError(f"--dest: folder {parent} does not exist")
    return dest


def cmd_pull(args: argparse.Namespace) -> int:
    # Verified in memory first: a tampered model never reaches the destination.
    blob, manifest = registry.fetch_verified(args.location, args.name, args.version)
    path = os.path.abspath(_destination(args.dest, os.path.basename(manifest["file"])))
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".shardfit-pull-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shardfit", description="shardfit model registry tools")
    top = parser.add_subparsers(dest="group", required=True, metavar="models")
    models = top.add_parser("models", help="list, show or pull published model versions")
    sub = models.add_subparsers(dest="command", required=True, metavar="{list,show,pull}")

    def common(p: argparse.ArgumentParser, version: bool) -> None:
        p.add_argument("location", metavar="LOCATION", help="registry root: a local folder or gs://bucket/prefix")
        p.add_argument("name", metavar="NAME", help="model name (the spec's `name`)")
        if version:
            p.add_argument("version", metavar="VERSION", nargs="?", default="latest",
                           help="a version, or 'latest' (default)")

    p_list = sub.add_parser("list", help="every version, oldest first; * marks latest")
    common(p_list, version=False)
    p_list.add_argument("--json", action="store_true", help="print the rows as JSON")
    p_list.set_defaults(func=cmd_list)

    p_show = sub.add_parser("show", help="print a version's manifest as JSON")
    common(p_show, version=True)
    p_show.add_argument("--spec", action="store_true", help="include the training spec embedded in the manifest")
    p_show.set_defaults(func=cmd_show)

    p_pull = sub.add_parser("pull", help="download a version's model file after checking its sha256")
    common(p_pull, version=True)
    p_pull.add_argument("--dest", default=".", help="folder or file path (default: current folder)")
    p_pull.set_defaults(func=cmd_pull)
    return parser


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ShardfitError and storage failures become one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return status
    except BrokenPipeError:
        # `... | head` closed the pipe: not an error worth a message (Python's documented recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except ShardfitError as exc:
        message = exc.message
    except (OSError, ValueError, KeyError) as exc:
        message = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - google.api_core / google.auth errors: one line, no traceback
        module = type(exc).__module__ or ""
        if not module.startswith(("google.", "requests", "urllib3")):
            raise
        message = f"{type(exc).__name__}: {exc}"
    print(f"shardfit: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
