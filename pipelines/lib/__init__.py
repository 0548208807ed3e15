"""Helpers for the Dagster definitions; not autoloaded as definitions."""
