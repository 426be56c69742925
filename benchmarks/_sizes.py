"""How big each scenario is: the full run that the README's figures come from, and `--quick`,
a smoke run that CI makes so that the benchmarks keep working."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is."""

    # Warm cost through an in-memory transport: interleaved rounds of sequential requests.
    warm_rounds: int = 150
    warm_requests: int = 100
    # Concurrent requests of the cold burst and of the revocation storm.
    burst: int = 1_000
    # The token endpoint's answer time in every scenario served on loopback.
    token_delay: float = 0.5
    # Rollover: tokens this short-lived, a steady stream across their refresh.
    token_lifetime: float = 8.0
    stream_rate: float = 100.0
    # The failing token endpoint: a stream of requests meeting 503, 503, then 429.
    failing_rate: float = 250.0
    failing_duration: float = 6.0
    retry_after: int = 1
    # The fleet sharing tokens through Redis.
    processes: int = 8
    process_burst: int = 100
    process_rate: float = 20.0
    # Sync clients.
    threads: int = 50
    thread_requests: int = 20

    @property
    def stream_duration(self) -> float:
        """Long enough to cross every contender's refresh, and short enough not to reach a
        second one.

        Tokens are renewed half their lifetime L after they are issued, or up to a second
        earlier: the emulator's ``exp`` is a whole second, which MosaicAuth and Authlib read.
        So the first renewal, and its token request, are over by L/2 + the token endpoint's
        delay d, and the second starts no sooner than L - 2 + d: the stream ends between.
        """
        first_done = self.token_lifetime / 2 + self.token_delay
        second_starts = self.token_lifetime - 2 + self.token_delay
        return (first_done + second_starts) / 2


FULL = Sizes()
QUICK = Sizes(
    warm_rounds=3,
    warm_requests=20,
    burst=30,
    token_delay=0.2,
    token_lifetime=6.0,
    stream_rate=20.0,
    failing_rate=20.0,
    failing_duration=3.5,
    processes=2,
    process_burst=6,
    process_rate=5.0,
    threads=4,
    thread_requests=3,
)
