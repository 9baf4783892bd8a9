"""Deliberate faults, switched on by environment variables, so tests can prove recovery.

SHARDFIT_CRASH_FIRST_ATTEMPT=<partition index>|all  kills a train task's first attempt mid-fit.
SHARDFIT_FAIL_JOIN=1                                 fails join after merging, before publishing.
"""

from __future__ import annotations

import os
import sys

CRASH_ENV = "SHARDFIT_CRASH_FIRST_ATTEMPT"
FAIL_JOIN_ENV = "SHARDFIT_FAIL_JOIN"


def maybe_crash_train(index: int, attempt: int) -> None:
    crash = os.environ.get(CRASH_ENV)
    if crash is not None and attempt == 0 and crash in (str(index), "all"):
        print(f"train: {CRASH_ENV} set: partition {index} dies on attempt 0", file=sys.stderr, flush=True)
        os._exit(17)


def maybe_fail_join() -> None:
    if os.environ.get(FAIL_JOIN_ENV) == "1":
        raise RuntimeError(f"{FAIL_JOIN_ENV}=1: join failed after merge, before publish")
