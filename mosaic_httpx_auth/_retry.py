"""When a failed token request is tried again, and after how long."""

from __future__ import annotations

import math
import operator
import random
import ssl
import sys
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from ._checks import seconds
from ._exceptions import ConfigurationError, TokenResponseError

if sys.version_info < (3, 11):  # pragma: no cover - the backport, a dependency there
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._exceptions import TokenRequestError

# Backoff doubles from `Retry.backoff` up to this; a token fetch should not stall longer.
MAX_BACKOFF = 8.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """How a token fetch tries again: exponential backoff with full jitter, honouring a
    ``Retry-After``. Give one to `MosaicAuth` as ``retry=Retry(max_attempts=5)``.

    Each number is checked when the `Retry` is made; a bad one is a `ConfigurationError`
    naming it.

    Args:
        max_attempts: Attempts of a token fetch that a caller without a timeout waits for,
            the first included (1: no retries). A request waits for its token as long as its
            own pool timeout allows, and the fetch keeps trying connection errors, timeouts,
            5xx and 429 while a request waits for it.
        backoff: Seconds the first retry waits at most; each next one doubles it (up to
            8 s), with full jitter. A ``Retry-After`` header takes precedence.
        max_retry_after: The longest ``Retry-After`` to honour; a longer one fails the fetch
            at once.
        attempt_timeout: Seconds each token request may take.
    """

    max_attempts: int = 3
    backoff: float = 0.5
    max_retry_after: float = 30.0
    attempt_timeout: float = 10.0

    def __post_init__(self) -> None:
        # Frozen: the checked values are set the way dataclasses set them.
        object.__setattr__(self, "max_attempts", _attempts(self.max_attempts))
        object.__setattr__(self, "backoff", seconds("backoff", self.backoff))
        object.__setattr__(
            self, "max_retry_after", seconds("max_retry_after", self.max_retry_after)
        )
        object.__setattr__(
            self,
            "attempt_timeout",
            seconds("attempt_timeout", self.attempt_timeout, positive=True),
        )

    def delay(self, attempt: int, *, jitter: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (from 1): full jitter.

        Full jitter (a uniform draw up to the exponential ceiling) spreads a fleet's retries
        after a shared outage instead of synchronising them.
        """
        # The exponent stops growing long before MAX_BACKOFF could: no float overflows.
        ceiling = min(MAX_BACKOFF, self.backoff * 2.0 ** min(attempt - 1, 32))
        return ceiling * jitter()


def _attempts(value: object) -> int:
    """`value` as a number of attempts: an int (numpy's too), 1 or more."""
    try:
        attempts = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        attempts = 0
    if isinstance(value, bool) or attempts < 1:
        raise ConfigurationError(
            f"max_attempts must be an int, 1 or more, not {value!r}", setting="max_attempts"
        )
    return attempts


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it was raised from or during, into exception groups too."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        cause = current.__cause__ or current.__context__
        if cause is not None:
            pending.append(cause)


def is_retryable(error: TokenRequestError) -> bool:
    """Whether trying again may help: no response, a timeout, 5xx or 429, but not other 4xx.

    A success answer that holds no usable token is not retried: the same server would most
    likely send the same answer; nor is a certificate that cannot be verified.
    """
    if isinstance(error, TokenResponseError):
        return False
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes(error)):
        return False
    status = error.status_code
    return status is None or status == 429 or status >= 500


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds; None if absent or unreadable.

    It is either a number of seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past
    means no wait.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, by RFC 5322's reading
        when = when.replace(tzinfo=timezone.utc)
    wait = when.timestamp() - now
    return max(0.0, wait) if math.isfinite(wait) else None
