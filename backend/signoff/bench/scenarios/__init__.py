"""Benchmark scenarios: each module here exposes ``SCENARIO`` (a `signoff.bench.Scenario`).

Modules whose name starts with ``_`` hold shared helpers and are not scenarios.
"""

from __future__ import annotations

import importlib
import pkgutil

from signoff.bench.model import Scenario


def all_scenarios() -> dict[str, Scenario]:
    """Every scenario of this package, by name, in module order."""
    found: dict[str, Scenario] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        scenario = getattr(loaded, "SCENARIO", None)
        if not isinstance(scenario, Scenario):
            raise TypeError(f"{loaded.__name__} has no SCENARIO (a signoff.bench.Scenario)")
        if scenario.name in found:
            raise ValueError(f"two scenarios are named {scenario.name!r}")
        found[scenario.name] = scenario
    return found
