"""shardfit: train an ensemble per data partition with Metaflow, merge it, publish a versioned model."""

# Ship this package in Metaflow's code package, so remote train/join pods can import it.
METAFLOW_PACKAGE_POLICY = "include"

from shardfit.errors import ShardfitError  # noqa: E402
from shardfit.registry import list_versions, load_model, read_manifest  # noqa: E402

__all__ = ["ShardfitError", "list_versions", "load_model", "read_manifest"]
__version__ = "0.1.0"
