"""Data quality: the rule codes every quarantined row carries (issue #21)."""
