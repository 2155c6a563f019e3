"""Size limits on templates and payloads.

Limits exist so that one tenant cannot submit a template or payload that makes validation,
scheduling or rendering expensive for everybody else; they are values, so a deployment can
raise them through settings without touching the rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateLimits:
    """Upper bounds checked by `parse_template` and `validate_payload`."""

    max_steps: int = 50
    max_dependency_depth: int = 10
    max_escalation_levels: int = 10
    max_payload_bytes: int = 65536


DEFAULT_LIMITS = TemplateLimits()
"""The limits used when a caller passes none."""
