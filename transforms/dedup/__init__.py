"""Deduplication of people within and across members (issue #5): match fields, then linkage."""
