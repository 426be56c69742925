"""Checks of setting values that `MosaicAuth`, `Retry` and `RedisTokenCache` share."""

from __future__ import annotations

import math
import reprlib

from ._exceptions import ConfigurationError


def seconds(name: str, value: float, *, positive: bool = False) -> float:
    """`value` as seconds: zero or more, or with `positive` more than zero; else a
    `ConfigurationError` naming the setting."""
    wanted = "a positive number of seconds" if positive else "zero or more seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        wanted = "a positive number of seconds" if positive else "a number of seconds"
    elif not _finite(value):
        wanted = f"a finite number: {wanted}"
    elif value > 0 or (value == 0 and not positive):
        return float(value)
    raise ConfigurationError(f"{name} must be {wanted}, not {reprlib.repr(value)}", setting=name)


def _finite(value: float) -> bool:
    """Whether `value` is a finite float, or an int a float can hold."""
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past float's range
        return False
