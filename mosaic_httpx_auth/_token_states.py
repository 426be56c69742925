"""The life of each resource's token: named states, and every transition between them.

These rules do no I/O, never await and hold no lock across a wait, so that every driver
shares them: the async store (whose fleet-wide lease decides who fetches, while `accepts`
decides whether a token from the fleet will do) and a thread-based driver next. A driver
asks what to do (`demand`), does it, and reports back (`attempt_failed`, `fetched`, `failed`,
`abandoned`, `refused`). Each transition is one short method; a `threading.Lock` makes each
one atomic, so drivers on several threads can share the states.

A resource is in one phase at a time, worked out from its record and the clock::

    EMPTY ─────────── demand ───────────▶ FETCHING ── fetched ──▶ FRESH
      ▲                                    │  ▲                    │ refresh_at
      │ failed, no Retry-After             │  │ demand             ▼
      ├────────────────────────────────────┘  │               ── STALE ── demand ──▶ REFRESHING
      │ failed with Retry-After               │              │                        │  │
      ▼                                       │              │ failed: serve the      │  │ fetched
    BACKING_OFF ── retry_at passes ───────────┘              │ token, try again later │  ▼
      (callers fail at once; a usable token                  ▼                        │ FRESH
       is still served, without refreshing)            BACKING_OFF ◀──────────────────┘

- FRESH: a usable token before its `refresh_at`: served from memory, nothing else happens.
- STALE: still usable, past `refresh_at`: served, and the first caller starts a refresh.
- REFRESHING: still usable, a refresh under way: served; nobody waits for the refresh.
- FETCHING: no usable token, a fetch under way: callers wait for its outcome, and a refresh
  that callers now wait on gets the full retry policy instead of its single attempt.
- BACKING_OFF: a token request failed and the next must wait: until `retry_at`, as the
  endpoint's Retry-After asked (a usable token is served, otherwise callers fail at once with
  a copy of the failure), or, after a failed refresh, until `refresh_after` (the token is
  served; a caller left with no usable token fetches at once).
- EMPTY: no usable token and nothing under way: the first caller starts a fetch.

A token expires (`usable_until`) into EMPTY, or BACKING_OFF while a pause lasts. A 401 from an
API (`refused`) drops the token it names, unless a newer one replaced it or it was itself
fetched in answer to a 401 moments ago and no API has `accepted` it since (then the API
refuses any token, and dropping it would only hammer the token endpoint). Refused tokens are
remembered until they expire, so that no cache can hand one back.
"""

from __future__ import annotations

import enum
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._exceptions import TokenRequestError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._exceptions import MosaicAuthError
    from ._retry import RetryPolicy
    from ._token import AccessToken

# A token fetched in answer to a 401 and refused before any request with it succeeded, within
# this many seconds, is kept: the API refuses every token, and fetching more would only spend
# the token endpoint's rate limit.
REFUSAL_COOLDOWN = 30.0
# The longest a Retry-After holds every token request back: a wrong date or a broken proxy
# must not stop a service for days. Past it, one request goes out and asks again.
RETRY_AFTER_HOLD_LIMIT = 600.0


class Phase(enum.Enum):
    """Where a resource's token is in its life; see the module docstring."""

    EMPTY = "empty"
    FETCHING = "fetching"
    FRESH = "fresh"
    STALE = "stale"
    REFRESHING = "refreshing"
    BACKING_OFF = "backing_off"


class Refusal(enum.Enum):
    """What a 401 from an API did to the token it was sent with."""

    DROPPED = "dropped"
    """It was the token in use: dropped, and the request may be retried with a new one."""
    REPLACED = "replaced"
    """A newer token had already replaced it: retry with that one."""
    KEPT = "kept"
    """It answered a refusal moments ago and no API has accepted it since: the API refuses
    every token, and a new one would not help. Kept, and no retry."""


Purpose = Literal["fetch", "refresh"]


@dataclass(eq=False, slots=True)
class Flight:
    """One token request under way for a resource (with its retries), and its outcome.

    `owner` is the event loop (or thread) that runs it; a flight whose owner has ended is
    replaced. `done` is the driver's completion signal; these rules never touch it.
    """

    resource: str | None
    purpose: Purpose
    owner: object
    done: Any = None
    waited_on: bool = False
    """Whether a caller waits for it, so that it deserves every attempt the policy allows."""
    attempt: int = 0
    token: AccessToken | None = None
    error: MosaicAuthError | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What `demand` tells a caller to do: serve `token`, or wait for `flight`, or raise `error`.

    `start` is a flight the caller must start (without waiting for it when it is a refresh).
    """

    token: AccessToken | None = None
    flight: Flight | None = None
    start: Flight | None = None
    error: TokenRequestError | None = None
    retry_in: float = 0.0
    """With `error`: seconds until a token request may go out again."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """A token and when it turns stale and stops being usable: replaced whole, never edited,
    so that the warm path can read it without a lock."""

    token: AccessToken | None
    refresh_at: float
    usable_until: float


_NO_ENTRY = _Entry(token=None, refresh_at=-math.inf, usable_until=-math.inf)


@dataclass(slots=True)
class _Record:
    """Everything known about one resource's token."""

    entry: _Entry = _NO_ENTRY
    flight: Flight | None = None
    retry_at: float = -math.inf
    """No token request before this: the endpoint asked to wait (``Retry-After``)."""
    error: TokenRequestError | None = None
    """The failure that set `retry_at`."""
    refresh_after: float = -math.inf
    """No refresh before this: the last one failed, and the token is served meanwhile."""
    refusal_pending: bool = False
    """Whether an API refused the last token, and no new one has arrived since."""
    answers_refusal: bool = False
    """Whether the token was fetched because an API refused the one before, and no request
    with it has succeeded yet."""
    received_at: float = -math.inf
    refused: dict[str, float] = field(default_factory=dict, repr=False)
    """Tokens an API refused, with their expiry: never to be taken back from a cache."""

    def phase(self, now: float) -> Phase:
        usable = now < self.entry.usable_until
        if self.flight is not None:
            return Phase.REFRESHING if usable else Phase.FETCHING
        if now < self.retry_at:
            return Phase.BACKING_OFF
        if not usable:
            return Phase.EMPTY
        if now < self.entry.refresh_at:
            return Phase.FRESH
        return Phase.BACKING_OFF if now < self.refresh_after else Phase.STALE


class TokenStates:
    """The phase of every resource's token, and the rules that move it from one to the next.

    A token is *usable* until `leeway` seconds before it expires and *fresh* until
    `refresh_window` seconds before that, each capped at half the time left, so that a
    short-lived token is still reused. A failed refresh is tried again after
    `refresh_retry_interval` seconds, or as long as the endpoint's ``Retry-After`` asked.
    """

    def __init__(
        self,
        *,
        leeway: float,
        refresh_window: float,
        retry: RetryPolicy,
        clock: Callable[[], float],
        owner_alive: Callable[[object], bool] = lambda owner: True,
        refresh_retry_interval: float = 5.0,
    ) -> None:
        self.leeway = leeway
        self.refresh_window = refresh_window
        self.retry = retry
        self.refresh_retry_interval = refresh_retry_interval
        self._clock = clock
        self._owner_alive = owner_alive
        self._records: dict[str | None, _Record] = {}
        self._lock = threading.Lock()
        self.on_probation: set[str | None] = set()
        """Resources whose token answers a refusal and has not been accepted by an API yet:
        the request flow reports acceptance only while this is not empty."""

    def fresh_token(self, resource: str | None) -> AccessToken | None:
        """The fresh token for `resource`, or None: the warm path, with no lock."""
        record = self._records.get(resource)
        if record is None:
            return None
        entry = record.entry
        return entry.token if self._clock() < entry.refresh_at else None

    def served_token(self, resource: str | None) -> tuple[AccessToken | None, bool]:
        """The usable token for `resource`, if any, and whether a refresh is due (STALE), with
        no lock: how a sync caller is served a stale token without waiting for anything."""
        record = self._records.get(resource)
        if record is None:
            return None, False
        now, entry = self._clock(), record.entry
        if now >= entry.usable_until:
            return None, False
        return entry.token, record.phase(now) is Phase.STALE

    def phase(self, resource: str | None) -> Phase:
        """The phase `resource`'s token is in now."""
        record = self._records.get(resource)
        return Phase.EMPTY if record is None else record.phase(self._clock())

    def demand(self, resource: str | None, *, owner: object) -> Step:
        """A caller on `owner` (its event loop or thread) needs a token for `resource`."""
        with self._lock:
            record = self._records.setdefault(resource, _Record())
            flight = record.flight
            if (
                flight is not None
                and flight.owner is not owner
                and not self._owner_alive(flight.owner)
            ):
                # Its event loop has ended: start afresh here (its outcome, should it ever
                # come, still counts).
                record.flight = None
            now = self._clock()
            phase = record.phase(now)
            if phase is Phase.FRESH or phase is Phase.REFRESHING:
                return Step(token=record.entry.token)
            if phase is Phase.STALE:
                record.flight = Flight(resource, "refresh", owner)
                return Step(token=record.entry.token, start=record.flight)
            if phase is Phase.FETCHING and record.flight is not None:
                record.flight.waited_on = True
                return Step(flight=record.flight)
            if phase is Phase.BACKING_OFF:
                if now < record.entry.usable_until:
                    return Step(token=record.entry.token)
                if record.error is not None:
                    return Step(error=record.error, retry_in=record.retry_at - now)
            record.flight = Flight(resource, "fetch", owner, waited_on=True)
            return Step(flight=record.flight, start=record.flight)

    def attempt_failed(self, flight: Flight, error: TokenRequestError) -> float | None:
        """Seconds to wait before `flight`'s next attempt, or None to give up with `error`.

        A refresh nobody waits for makes one attempt: the token it replaces is still usable.
        """
        with self._lock:
            if self._records[flight.resource].flight is not flight:
                return None  # superseded: its callers were served by another flight
            max_attempts = self.retry.max_attempts if flight.waited_on else 1
            return self.retry.retry_in(error, attempt=flight.attempt, max_attempts=max_attempts)

    def fetched(self, flight: Flight, token: AccessToken) -> None:
        """`flight` got `token` (from the endpoint, or a shared cache)."""
        with self._lock:
            record = self._records[flight.resource]
            flight.token = token
            if record.flight is flight:
                record.flight = None
            current = record.entry.token
            if current is not None and token.expires_at < current.expires_at:
                return  # a newer token arrived first: keep it
            record.entry = self._entry_for(token)
            record.answers_refusal, record.refusal_pending = record.refusal_pending, False
            if record.answers_refusal:
                self.on_probation.add(flight.resource)
            else:
                self.on_probation.discard(flight.resource)
            record.received_at = self._clock()
            record.retry_at, record.error, record.refresh_after = -math.inf, None, -math.inf

    def failed(self, flight: Flight, error: MosaicAuthError) -> float | None:
        """`flight` gave up with `error`. Returns the pause before the next refresh when a
        still-usable token goes on being served (stale-if-error), else None.

        A ``Retry-After`` holds every token request back for that long; a failed refresh also
        rests `refresh_retry_interval` seconds, while its token is served.
        """
        with self._lock:
            record = self._records[flight.resource]
            flight.error = error
            if record.flight is not flight:
                return None
            record.flight = None
            now = self._clock()
            retry_after = error.retry_after if isinstance(error, TokenRequestError) else None
            if retry_after and isinstance(error, TokenRequestError):
                record.retry_at = now + min(retry_after, RETRY_AFTER_HOLD_LIMIT)
                record.error = error
            if now >= record.entry.usable_until:
                return None
            pause = max(retry_after or 0.0, self.refresh_retry_interval)
            record.refresh_after = now + pause
            return pause

    def abandoned(self, flight: Flight) -> None:
        """`flight` ended without an outcome (its event loop closed, or it was cancelled)."""
        with self._lock:
            record = self._records[flight.resource]
            if record.flight is flight:
                record.flight = None

    def accepted(self, resource: str | None, token: AccessToken) -> None:
        """An API accepted `token`: a later 401 to it is a revocation, not a refusal of every
        token."""
        with self._lock:
            record = self._records.get(resource)
            if record is not None and record.entry.token == token:
                record.answers_refusal = False
                self.on_probation.discard(resource)

    def refused(self, resource: str | None, token: AccessToken) -> Refusal:
        """An API answered 401 to a request carrying `token`: what that does to it."""
        with self._lock:
            record = self._records.setdefault(resource, _Record())
            now = self._clock()
            record.refused = {
                value: expires_at
                for value, expires_at in record.refused.items()
                if expires_at > now
            }
            if record.entry.token != token:
                return Refusal.REPLACED
            if record.answers_refusal and now - record.received_at < REFUSAL_COOLDOWN:
                return Refusal.KEPT
            record.refused[token.token] = token.expires_at
            record.entry, record.refusal_pending = _NO_ENTRY, True
            self.on_probation.discard(resource)
            return Refusal.DROPPED

    def accepts(self, flight: Flight, token: AccessToken) -> bool:
        """Whether `token`, read from a shared cache, can end `flight` instead of a request.

        It must not be one an API refused, and must be usable (fresh, for a refresh).
        """
        record = self._records[flight.resource]
        if token.token in record.refused:
            return False
        entry = self._entry_for(token)
        limit = entry.refresh_at if flight.purpose == "refresh" else entry.usable_until
        return self._clock() < limit

    def flights(self, owner: object) -> list[Flight]:
        """The flights under way on `owner`."""
        with self._lock:
            return [
                record.flight
                for record in self._records.values()
                if record.flight is not None and record.flight.owner is owner
            ]

    def after_fork(self) -> None:
        """In a forked child: forget the flights under way (their event loops and threads
        stayed in the parent), and replace a lock another thread may have held."""
        self._lock = threading.Lock()
        for record in self._records.values():
            record.flight = None

    def expires_in(self, resource: str | None) -> float:
        """Seconds until `resource`'s token stops being served (negative once it has)."""
        record = self._records.get(resource)
        return -math.inf if record is None else record.entry.usable_until - self._clock()

    def _entry_for(self, token: AccessToken) -> _Entry:
        """`token` with when it turns stale and when it stops being usable."""
        leeway = self.leeway
        if token.lifetime is not None:
            leeway = min(leeway, token.lifetime / 2)
        usable_until = token.expires_at - leeway
        window = self.refresh_window
        if token.issued_at is not None:
            window = min(window, (usable_until - token.issued_at) / 2)
        return _Entry(token, refresh_at=usable_until - window, usable_until=usable_until)
