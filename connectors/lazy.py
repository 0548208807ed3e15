"""Names of a package that load on first use (PEP 562).

Why: importing one submodule of a connector package (the settings the member files need)
must not pull in dlt and the whole source; the webhook receiver imports the member model and
has to start in well under a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``names[name]`` when ``name`` is first read, and
    keeping the value in the package's ``namespace`` so later reads cost nothing."""

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
