"""How error messages and log lines name what they speak of."""

from __future__ import annotations


def for_resource(resource: str | None) -> str:
    """Which token a message speaks of: ``for resource 'https://...'``, or ``without a
    resource`` (Identity Management's), never ``for resource None``."""
    return "without a resource" if resource is None else f"for resource {resource!r}"
