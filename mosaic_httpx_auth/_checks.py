"""Checks of setting values that `MosaicAuth`, `Retry` and `RedisTokenCache` share."""

from __future__ import annotations

import math

from ._exceptions import ConfigurationError


def seconds(name: str, value: float, *, positive: bool = False) -> float:
    """`value` as seconds: zero or more, or with `positive` more than zero; else a
    `ConfigurationError` naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        wanted = "a positive number of seconds" if positive else "a number of seconds"
    elif not math.isfinite(value) or value < 0 or (positive and value == 0):
        wanted = "a positive number of seconds" if positive else "zero or more seconds"
    else:
        return float(value)
    raise ConfigurationError(f"{name} must be {wanted}, not {value!r}", setting=name)
