"""Dagster orchestration for Outcomes Hub: the only package that imports Dagster."""

import os

# dlt reports anonymous usage unless told not to; the hub makes no calls it does not need.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
