"""Merge functions that turn per-partition fitted sub-models into one estimator."""

METAFLOW_PACKAGE_POLICY = "include"
