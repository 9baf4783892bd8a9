"""Deliberate faults, switched on by environment variables, so tests can prove recovery.

SHARDFIT_CRASH_FIRST_ATTEMPT=<partition index>|all  kills a train task's first attempt mid-fit.
SHARDFIT_FAIL_JOIN=1                                 fails join after merging, before publishing.
SHARDFIT_FAIL_JOIN_AFTER_PUBLISH=1                   fails join's first attempt right after publishing.
"""

from __future__ import annotations

import os
import sys

CRASH_ENV = "SHARDFIT_CRASH_FIRST_ATTEMPT"
FAIL_JOIN_ENV = "SHARDFIT_FAIL_JOIN"
FAIL_AFTER_PUBLISH_ENV = "SHARDFIT_FAIL_JOIN_AFTER_PUBLISH"


def maybe_crash_train(index: int, attempt: int) -> None:
    crash = os.environ.get(CRASH_ENV)
    if crash is not None and attempt == 0 and crash in (str(index), "all"):
        print(f"train: {CRASH_ENV} set: partition {index} dies on attempt 0", file=sys.stderr, flush=True)
        os._exit(17)


def maybe_fail_join() -> None:
    if os.environ.get(FAIL_JOIN_ENV) == "1":
        raise RuntimeError(f"{FAIL_JOIN_ENV}=1: join failed after merge, before publish")


def maybe_fail_after_publish(attempt: int) -> None:
    if os.environ.get(FAIL_AFTER_PUBLISH_ENV) == "1" and attempt == 0:
        raise RuntimeError(f"{FAIL_AFTER_PUBLISH_ENV}=1: join failed after publishing, on attempt 0")
