"""Train an ensemble on data too big for one worker: partition, fit per partition, merge, publish.

    python flows/train.py run --spec specs/moons.yaml

start      validate the spec (imports, parameters, merger, data, output)
partition  stream the data once into a holdout and P partitions
train      one task per partition (foreach), each with its own seed
join       merge the sub-models, evaluate on the holdout, publish a version
end        clean up the partitions, print where the model is
"""

import copy
import time

from metaflow import Config, FlowSpec, card, current, retry, step

import mergers  # noqa: F401 - imported so Metaflow ships it to remote tasks
import shardfit  # noqa: F401 - same
from shardfit import cards, faults, merge, registry, validate
from shardfit import partition as parting
from shardfit import spec as spec_mod
from shardfit.cli import main as prepare_cli
from shardfit.evaluate import SCORE_KEY, evaluate
from shardfit.kube import compute_from_spec
from shardfit.storage import open_storage
from shardfit.train import fit_partition, peak_rss_mb


@compute_from_spec
class DistributedTrainingFlow(FlowSpec):
    """Fit one sub-model per data partition and merge them into one versioned model."""

    spec = Config("spec", parser=spec_mod.parse_config,
                  help="the training spec (YAML); `run --spec FILE` sets it")

    @step
    def start(self):
        """Check everything that can be checked before any data is read or model fit."""
        t0 = time.time()
        self.resolved_spec = self.spec.to_dict() if hasattr(self.spec, "to_dict") else dict(self.spec)
        info = validate.check(self.resolved_spec)
        self.kind = info["kind"]
        self.merger_snapshot = info["merger"]
        self.step_stats = {"start": {"seconds": time.time() - t0, "peak_rss_mb": peak_rss_mb()}}
        print(f"start: {self.resolved_spec['name']}: {self.kind} "
              f"{self.resolved_spec['model']['class']}, merger {self.merger_snapshot['function']}")
        self.next(self.partition)

    @step
    def partition(self):
        """Stream the data once into holdout (+ calibration) and P partitions under the run's prefix."""
        t0 = time.time()
        storage = open_storage(self.resolved_spec["output"]["location"])
        prefix = f"_runs/{current.flow_name}/{current.run_id}/partitions"
        self.plan = parting.partition(self.resolved_spec, storage, prefix, self.kind == "classifier")
        self.parts = self.plan["partitions"]
        for p in self.parts:
            print(f"partition {p['index']}: {p['rows']:,} rows, classes {p['class_counts'] or '-'}")
        self.step_stats["partition"] = {"seconds": time.time() - t0, "peak_rss_mb": peak_rss_mb()}
        self.next(self.train, foreach="parts")

    @retry(times=2, minutes_between_retries=0)
    @step
    def train(self):
        """Fit this partition's sub-model with its own seed and score it on the holdout."""
        desc = self.input
        storage = open_storage(self.resolved_spec["output"]["location"])
        self.sub_model, self.record = fit_partition(
            self.resolved_spec, self.plan, desc, storage, self.kind, attempt=current.retry_count
        )
        key = SCORE_KEY[self.kind]
        print(f"train: partition {desc['index'] + 1} of {desc['of']} finished: {desc['rows']:,} rows, "
              f"fit {self.record['fit_seconds']:.1f}s, holdout {key} {self.record[key]:.4f}, "
              f"peak RSS {self.record['peak_rss_mb']:.0f} MB")
        self.next(self.join)

    @retry(times=2, minutes_between_retries=0)
    @card(type="blank", id="report")
    @step
    def join(self, inputs):
        """Merge the sub-models, evaluate on the holdout, publish an immutable version."""
        t0 = time.time()
        self.merge_artifacts(inputs, include=["resolved_spec", "plan", "kind", "merger_snapshot", "step_stats"])
        spec, plan = self.resolved_spec, self.plan
        ordered = sorted(inputs, key=lambda i: i.record["index"])
        models = [i.sub_model for i in ordered]
        records = [i.record for i in ordered]
        storage = open_storage(spec["output"]["location"])
        fn = merge.resolve(self.merger_snapshot)
        if self.merger_snapshot["from_file"] or not self.merger_snapshot["module"].startswith("mergers."):
            models = copy.deepcopy(models)  # a user's merger may mutate its inputs (the operator's did)
        context = merge.context(spec, plan, records, storage)
        t_merge = time.time()
        self.model = merge.call(fn, models, **context)
        merge_seconds = time.time() - t_merge
        scores = evaluate(self.model, plan, storage, self.kind)
        key = SCORE_KEY[self.kind]
        self.metrics = {
            "merged": {key: scores[key]},
            "partitions": records,
            "n_estimators": len(getattr(self.model, "estimators_", []) or []) or None,
            "holdout_rows": scores["rows"],
            "merge_seconds": merge_seconds,
            "partition_rows_per_second": plan["rows_per_second"],
        }
        self.evaluation = scores
        faults.maybe_fail_join()
        self.step_stats["train"] = {"seconds": max(r["fit_seconds"] for r in records),
                                    "peak_rss_mb": max(r["peak_rss_mb"] for r in records)}
        self.step_stats["join"] = {"seconds": time.time() - t0, "peak_rss_mb": peak_rss_mb()}
        self.metrics["steps"] = self.step_stats
        pathspec = f"{current.flow_name}/{current.run_id}"
        # A retried join whose first attempt published (then failed to save) reuses that version.
        manifest = registry.find_run_version(storage, spec["name"], pathspec)
        self.version = manifest["version"] if manifest else registry.new_version(current.run_id)
        self.model_uri = registry.model_uri(storage, spec["name"], self.version, spec["output"]["format"])
        cards.report(self)  # before publishing: a failure here must not leave a version behind
        if manifest is None:
            manifest = registry.publish(
                storage, spec["name"], self.model,
                metrics=self.metrics, spec=spec, pathspec=pathspec,
                fmt=spec["output"]["format"], compress=spec["output"]["compress"], version=self.version,
                extra={"merger": {k: v for k, v in self.merger_snapshot.items() if k != "source"}},
            )
        faults.maybe_fail_after_publish(current.retry_count)
        self.manifest = {k: v for k, v in manifest.items() if k != "spec"}
        cards.tag_run(spec["name"], self.version)  # publishing is the join's last fallible act
        print(f"join: merged {key} {scores[key]:.4f} on {scores['rows']:,} holdout rows; "
              f"published {self.model_uri}")
        self.next(self.end)

    @step
    def end(self):
        """Remove this run's partitions (unless kept) and say where the model is."""
        spec = self.resolved_spec
        if not spec["data"]["keep_partitions"]:
            removed = open_storage(self.plan["storage"]).delete_prefix(self.plan["key_prefix"])
            print(f"end: removed {removed} partition files")
        key = SCORE_KEY[self.kind]
        print(f"end: {spec['name']} version {self.version}: merged holdout {key} = "
              f"{self.metrics['merged'][key]:.4f}")
        print(f"end: model at {self.model_uri}")


if __name__ == "__main__":
    prepare_cli()
    DistributedTrainingFlow()
