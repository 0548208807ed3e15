"""Exceptions raised by ``transforms/``."""

from __future__ import annotations


class TransformError(Exception):
    """A SQL model is invalid or failed in the warehouse; the message names the model."""
