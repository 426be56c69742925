"""The token fetcher: drives the token states (`_token_states`) on an event loop.

The states decide; the fetcher does what they decide. A flight (a fetch or refresh, with its
retries) runs in a task of the event loop's own, not in the task of the caller who needed it,
and returns its token to the states, which hand it to every waiter: a caller that gives up
stops waiting, and the flight goes on while anyone else waits. Each waiter leaves with the
token, a copy of the error of its own, or at its own deadline.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio

from ._exceptions import MosaicAuthError, TokenRequestError
from ._loops.tasks import current_loop, start_detached
from ._messages import for_resource
from ._telemetry import AuthEvent, logger
from ._token_states import Refusal
from ._unauthorized import bound_token_refused, certificate_bound
from .cache import CacheKey, CacheLease

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._endpoint import TokenEndpoint
    from ._telemetry import Telemetry
    from ._token import AccessToken
    from ._token_states import Flight, TokenStates, Waiter
    from .cache import TokenCache

_T = TypeVar("_T")

# While another process holds the lease on a token, its flight asks the cache again after
# these pauses, doubling from the first to the longest: a token request takes a fraction of a
# second, and the waiting processes' callers are served their current token if they have one.
FLEET_POLL_FIRST = 0.025
FLEET_POLL_LONGEST = 0.2
# A flight waits for a lease holder at most this many leases, then fetches on its own.
FLEET_WAIT_LIMIT = 3
# After a shared cache fails, it is left alone for this long, doubling while it keeps
# failing: a cold fetch during an outage costs no timeout, but the first after each pause.
CACHE_PAUSE_FIRST = 2.0
CACHE_PAUSE_LONGEST = 30.0
# A caller waiting for a flight that another event loop runs looks this often whether that loop
# still runs: a loop stopped mid-fetch (its `run_until_complete` returned) tells nobody.
OWNER_CHECK_INTERVAL = 0.25


@dataclass(slots=True)
class _CacheHealth:
    """Whether a shared cache is being left alone after failing, for every fetcher using it:
    an outage is one warning and one pause, however many `MosaicAuth` share the cache."""

    resumes_at: float = -math.inf
    pause: float = CACHE_PAUSE_FIRST
    failed_at: float | None = None
    # Moves at each failure and recovery, so that the calls already under way when the
    # cache failed, which fail together, count as one failure.
    epoch: int = 0


_HEALTH: weakref.WeakKeyDictionary[object, dict[object, _CacheHealth]] = weakref.WeakKeyDictionary()


def _health_of(cache: object, monotonic: Callable[[], float]) -> _CacheHealth:
    """The health record shared by every fetcher using `cache` and measuring on `monotonic`
    (a test's clock, or `time.monotonic`: times on two clocks cannot be compared)."""
    try:
        by_clock = _HEALTH.setdefault(cache, {})
    except TypeError:  # a cache that cannot be weakly referenced, or hashed: its own record
        return _CacheHealth()
    return by_clock.setdefault(monotonic, _CacheHealth())


def stopped_by_close(resource: str | None) -> TokenRequestError:
    """The error of a fetch for `resource` that `aclose()` or `close()` stopped."""
    return TokenRequestError(
        f"the token fetch {for_resource(resource)} was stopped: the MosaicAuth was closed",
        resource=resource,
    )


class _Unavailable:
    """What a shared cache call returns when the cache failed or is being left alone."""


_UNAVAILABLE = _Unavailable()


class TokenFetcher:
    """Keeps one token per resource, fetches it once for all callers, and refreshes it ahead.

    A `TokenCache`, when given, is claimed by each flight before it asks the endpoint and
    written with each new token; its failures are logged once per outage and bypassed, so an
    outage never fails requests.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        states: TokenStates,
        *,
        telemetry: Telemetry,
        cache: TokenCache | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._endpoint = endpoint
        self._states = states
        self._telemetry = telemetry
        # The states' clocks: token lifetimes on the wall clock, pauses on the monotonic one.
        self._clock, self._monotonic = states.clock, states.monotonic
        self._cache = cache
        self._sleep = sleep
        self._running: dict[Flight, anyio.CancelScope] = {}
        # The resources whose certificate-bound tokens an API kept refusing: said once each.
        self._told_bound: set[str | None] = set()
        self._health = _health_of(cache, self._monotonic)
        # Without a cache, a flight asks the endpoint and nothing else.
        self._obtain: Callable[[Flight], Awaitable[AccessToken | None]] = (
            self._request if cache is None else partial(self._through_cache, cache)
        )

    async def token(
        self,
        resource: str | None,
        *,
        deadline: float | None = None,
        refused: AccessToken | None = None,
    ) -> AccessToken:
        """A usable token for `resource` other than `refused` (one an API just refused),
        waiting for a fetch until `deadline` (monotonic) if need be; without one, for at most
        the retry policy's attempts of one flight.

        Raises `TokenRequestError` (a copy of its own per caller) when the fetch fails, when
        no token can come by `deadline`, or at once when a token request is held back longer
        than the caller can wait.
        """
        owner = current_loop()
        while True:
            decision = self._states.demand(
                resource, owner=owner, deadline=deadline, refused=refused
            )
            if decision.start is not None:
                start_detached(self._fly, decision.start)
            if decision.token is not None:
                self._telemetry.cache_hits += 1
                return decision.token
            if decision.error is not None:
                raise decision.error
            if decision.waiter is not None:
                token = await self._wait(decision.waiter)
                if token is not None:
                    return token
            # The flight ended without an outcome (its event loop did first): ask again.

    async def _wait(self, waiter: Waiter) -> AccessToken | None:
        """Wait for `waiter`'s flight to give it a token or an error; None: ask again."""
        states, flight = self._states, waiter.flight
        try:
            while True:
                verdict, changed = states.verdict(waiter)
                if verdict.token is not None:
                    return verdict.token
                if verdict.error is not None:
                    raise verdict.error
                if not verdict.waiting:
                    return None
                limit = math.inf
                if verdict.wait_until is not None:
                    limit = verdict.wait_until - self._monotonic()
                if flight.owner is not waiter.owner:
                    # Another event loop runs it: look now and then whether it still runs.
                    limit = min(limit, OWNER_CHECK_INTERVAL)
                with anyio.move_on_after(max(limit, 0.0)):
                    await changed.wait()
        finally:
            states.leave(waiter)

    async def refused(self, resource: str | None, token: AccessToken, place: str) -> bool:
        """An API at `place` answered 401 to `token`: drop it if the states say so; whether
        to retry."""
        refusal = self._states.refused(resource, token, place)
        if refusal is Refusal.DROPPED:
            # Only once per token, not once per request that carried it; always made, as the
            # fleet must not hand the refused token around.
            await self.discard_shared(resource, token, during_pause=True)
        # Kept: the API refuses every token. If they are bound, a new one will not help.
        bound = refusal is Refusal.KEPT and certificate_bound(token)
        if bound and resource not in self._told_bound:
            self._told_bound.add(resource)
            logger.warning("%s", bound_token_refused(resource, place))
        return refusal is not Refusal.KEPT

    @property
    def shares_tokens(self) -> bool:
        """Whether tokens go through a shared cache."""
        return self._cache is not None

    async def discard_shared(
        self, resource: str | None, token: AccessToken, *, during_pause: bool = False
    ) -> None:
        """Forget `token` in the shared cache, if it is still the one there (another process
        may have stored a newer one); by default not while a cache outage is being waited
        out, which would cost an application's invalidation a timeout for nothing."""
        if self._cache is not None:
            key = await self._key(resource)
            await self._shared(self._cache.discard, key, token, during_pause=during_pause)

    async def aclose(self) -> None:
        """Stop this event loop's flights (their waiters get an error) and close its token
        client."""
        loop = current_loop()
        for flight, scope in list(self._running.items()):
            if flight.owner is loop:
                scope.cancel()
        await self._endpoint.aclose()

    async def _fly(self, flight: Flight) -> None:
        """Run `flight` to its outcome and report it to the states, which tell its waiters;
        never raises but cancellation."""
        states, resource = self._states, flight.resource
        try:
            with anyio.CancelScope() as scope:
                self._running[flight] = scope
                token = await self._obtain(flight)
            if scope.cancelled_caught:
                states.closed(flight, stopped_by_close(resource))
                return
        except Exception as error:  # every failure goes to the waiters
            self._give_up(flight, error)
        except BaseException:
            states.abandoned(flight)  # the event loop is shutting down
            raise
        else:
            if token is None:
                return  # nobody waits for it any more
            states.fetched(flight, token)
            if flight.purpose == "refresh":
                expires_in = token.expires_at - self._clock()
                self._telemetry.report(
                    AuthEvent("token_refreshed", resource, expires_in=expires_in)
                )
        finally:
            del self._running[flight]

    async def _through_cache(self, cache: TokenCache, flight: Flight) -> AccessToken | None:
        """A token for `flight`: `cache`'s if it has a good one, else the endpoint's, fetched
        for everybody while this process holds the entry's lease."""
        key = await self._key(flight.resource)
        token, lease = await self._claim(flight, cache, key)
        if token is not None:
            return token
        if lease is None:
            return await self._request(flight)
        try:
            token = await self._fetch_for_the_fleet(flight, cache, key, lease)
        except BaseException:
            with anyio.CancelScope(shield=True):  # let the next process try at once
                await self._shared(cache.release, key, lease)
            raise
        if token is None:
            await self._shared(cache.release, key, lease)
            return None
        # Stored before it is used here: a 401 to it must find it there to discard.
        expires_in = token.expires_at - self._clock()
        await self._shared(cache.store, key, token, lease=lease, expires_in=expires_in)
        return token

    async def _fetch_for_the_fleet(
        self, flight: Flight, cache: TokenCache, key: CacheKey, lease: CacheLease
    ) -> AccessToken | None:
        """Request `flight`'s token while holding `lease`, renewing it as long as that takes:
        a slow token endpoint must not let the lease lapse into a second request."""
        fetched: list[AccessToken | None] = []
        failed: list[Exception] = []

        async def fetch() -> None:
            try:
                fetched.append(await self._request(flight))
            except Exception as error:
                failed.append(error)
            finally:
                tasks.cancel_scope.cancel()

        async def renew() -> None:
            while True:
                # Real time, as leases lapse in real time.
                await anyio.sleep(cache.lease_seconds / 3)
                await self._shared(cache.renew, key, lease)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fetch)
            tasks.start_soon(renew)
        if failed:
            raise failed[0]
        return fetched[0]

    async def _request(self, flight: Flight) -> AccessToken | None:
        """Ask the endpoint, trying again while the states say a waiter can use it; raise the
        last failure. None: nobody waits for the flight any more."""
        states, resource = self._states, flight.resource
        while True:
            wait = flight.next_attempt_at - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
            if not states.attempt_starts(flight):
                return None
            attempt, started = flight.attempts, self._monotonic()
            sent_at = started

            def sent(attempt: int = attempt) -> None:
                nonlocal sent_at
                # A request's duration is its exchange's, not its credentials' or client's.
                sent_at = self._monotonic()
                self._telemetry.report(AuthEvent("token_requested", resource, attempt=attempt))

            try:
                token = await self._endpoint.request_token(resource, on_sent=sent)
            except TokenRequestError as error:
                request_duration = self._monotonic() - sent_at
                if self._attempt_failed(flight, attempt, error, request_duration) is None:
                    raise
                continue
            now = self._monotonic()
            first = flight.first_attempt_at if flight.first_attempt_at is not None else started
            self._telemetry.report(
                AuthEvent(
                    "token_fetched",
                    resource,
                    attempt=attempt,
                    duration=now - first,
                    expires_in=token.expires_at - self._clock(),
                    request_duration=now - sent_at,
                )
            )
            return token

    def _attempt_failed(
        self, flight: Flight, attempt: int, error: TokenRequestError, request_duration: float
    ) -> float | None:
        """Tell the states and report that `flight`'s token request failed: the wait before
        the next attempt, None when the fetch gives up."""
        retry_in = self._states.attempt_failed(flight, error)
        self._telemetry.report(
            AuthEvent(
                "token_request_failed",
                flight.resource,
                attempt=attempt,
                status_code=error.status_code,
                error=type(error).__name__,
                retry_in=retry_in,
                request_duration=request_duration,
            ),
            error,
        )
        return retry_in

    def _give_up(self, flight: Flight, error: Exception) -> None:
        """End `flight` with `error`: a `MosaicAuthError` for its waiters, whatever happened."""
        resource = flight.resource
        if not isinstance(error, MosaicAuthError):
            logger.error("fetching a token %s failed", for_resource(resource), exc_info=error)
            wrapped = TokenRequestError(
                f"fetching a token {for_resource(resource)} failed: {type(error).__name__}",
                resource=resource,
            )
            wrapped.__cause__ = error
            error = wrapped
        pause = self._states.failed(flight, error)
        if pause is not None:
            self._telemetry.report(
                AuthEvent(
                    "token_refresh_failed",
                    resource,
                    status_code=getattr(error, "status_code", None),
                    error=type(error).__name__,
                    retry_in=pause,
                    expires_in=self._states.expires_in(resource),
                ),
                error,
            )

    async def _claim(
        self, flight: Flight, cache: TokenCache, key: CacheKey
    ) -> tuple[AccessToken | None, CacheLease | None]:
        """The shared cache's token for `flight`, if it has one the states accept; else the
        lease to fetch one for everybody, once nobody else holds it. (None, None): the cache
        failed, or the lease holder took too long, and the flight fetches on its own."""
        passing_over: AccessToken | None = None
        pause, waited = FLEET_POLL_FIRST, 0.0
        while True:
            outcome = await self._shared(
                cache.claim, key, passing_over=passing_over, during_pause=False
            )
            if isinstance(outcome, _Unavailable):
                return None, None
            if isinstance(outcome, CacheLease):
                return None, outcome
            if outcome is not None and outcome != passing_over:
                if self._states.accepts(flight, outcome):
                    return outcome, None
                passing_over = outcome  # refused, or due for refresh: claim the lease instead
                continue
            if waited >= FLEET_WAIT_LIMIT * cache.lease_seconds:
                # A holder renewing its lease for this long is stuck, or the cache keeps
                # handing back a token passed over: better a token request of our own.
                logger.warning(
                    "gave up waiting %.0f s for another process's token %s; fetching it here",
                    waited,
                    for_resource(flight.resource),
                )
                return None, None
            await self._sleep(pause)  # another process is fetching it
            waited += pause
            pause = min(pause * 2, FLEET_POLL_LONGEST)

    async def _shared(
        self,
        call: Callable[..., Awaitable[_T]],
        *args: object,
        during_pause: bool = True,
        **kwargs: object,
    ) -> _T | _Unavailable:
        """``call(...)`` on the shared cache; if it fails, report the outage once and leave
        the cache alone for a while.

        Claims, and an application's invalidations, are left out during that pause
        (`during_pause`): they are what would cost a caller a timeout. A lease holder's
        store, renewal and release, and a 401's discard of a refused token, are each one
        bounded call that the fleet depends on, and are always made.
        A shared cache outage must not fail requests: tokens are fetched directly instead.
        """
        health = self._health
        if not during_pause and self._monotonic() < health.resumes_at:
            return _UNAVAILABLE
        epoch = health.epoch
        try:
            result = await call(*args, **kwargs)
        except Exception as error:
            if epoch == health.epoch:  # not a call already under way when it failed
                self._cache_failed(error)
            return _UNAVAILABLE
        if health.failed_at is not None:
            duration = self._monotonic() - health.failed_at
            health.failed_at, health.pause = None, CACHE_PAUSE_FIRST
            health.epoch += 1
            self._telemetry.report(AuthEvent("cache_recovered", None, duration=duration))
        return result

    def _cache_failed(self, error: Exception) -> None:
        """Leave the shared cache alone for a pause that doubles while it keeps failing, and
        report the outage when it begins."""
        health, now = self._health, self._monotonic()
        pause = health.pause
        health.resumes_at = now + pause
        health.pause = min(pause * 2, CACHE_PAUSE_LONGEST)
        health.epoch += 1
        if health.failed_at is None:
            health.failed_at = now
            self._telemetry.report(
                AuthEvent("cache_unavailable", None, error=type(error).__name__, retry_in=pause),
                error,
            )
        else:
            logger.debug("the shared token cache still fails: %s", error)

    async def _key(self, resource: str | None) -> CacheKey:
        endpoint = self._endpoint
        # The first in the process takes a worker thread tens of milliseconds.
        cache_secret = await endpoint.client_auth.cache_secret(endpoint.token_url)
        return CacheKey(endpoint.token_url, endpoint.client_id, resource, cache_secret=cache_secret)
