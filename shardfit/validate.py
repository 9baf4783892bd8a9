"""Everything checkable before training starts: imports, parameters, merger, data, output.

The structural checks live in `shardfit.spec`; these need imports, files or
the network, and run at the start of the flow (and before a local run starts).
"""

from __future__ import annotations

from shardfit import estimator, merge
from shardfit.data import Source
from shardfit.errors import SpecError
from shardfit.storage import open_storage


def probe(spec: dict) -> None:
    """The path exists, the glob matches, and the first rows of the first file parse.

    Reading one small chunk catches a missing target column, a non-numeric
    feature or NaN labels at the top of a file before any task runs; the
    partition step still checks every row.
    """
    source = Source({**spec["data"], "chunk_rows": 1000})
    unit = source.units[0]
    if unit.fmt == "callable":
        from shardfit.data import load_callable

        load_callable(spec["data"]["source"])
        return
    if unit.fmt == "pickle":
        return  # whole-partition pickles: too big to read twice; the partition step checks them
    for _ in source.iter_chunks(unit):
        break


def check(spec: dict, *, touch_output: bool = True, probe_data: bool = True) -> dict:
    """Raise SpecError/DataError naming the field; return what the flow needs to know."""
    model = spec["model"]
    est = estimator.build(model)
    kind = estimator.estimator_kind(est)
    for i, override in enumerate(model.get("per_worker") or []):
        params = {**model["parameters"], **override}
        estimator.build(model, params, where=f"model.per_worker[{i}]")
    snap = merge.snapshot(spec["merger"])
    fn = merge.resolve(snap)
    if kind not in merge.supported_kinds(fn):
        raise SpecError(
            f"merger.function: {snap['module']}.{snap['function']} merges only "
            f"{'/'.join(merge.supported_kinds(fn))} models, but {model['class']} is a {kind}"
        )
    if spec["merger"]["calibration_size"] == 0 and getattr(fn, "needs_calibration", False):
        raise SpecError(f"merger.calibration_size: {snap['function']} needs a calibration slice; set it > 0")
    if probe_data:
        probe(spec)
    if touch_output:
        open_storage(spec["output"]["location"]).check_writable()
    return {"kind": kind, "merger": snap}
