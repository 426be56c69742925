"""What a run measured, as the Markdown table the README shows, the targets, and the plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ._contenders import (
    AUTHLIB,
    HTTPX_AUTH,
    OURS,
    OURS_HTTPX2,
    ROUTES,
    STATIC,
    STATIC_HTTPX2,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from ._fleet import Fleet
    from ._load import Stream
    from ._scenarios import Burst, FailingEndpoint, Rollover, Storm
    from ._sizes import Sizes
    from ._threads import Threads
    from ._warm import Warm

COLUMNS = (STATIC, OURS, HTTPX_AUTH, AUTHLIB)
HTTPX2_COLUMNS = (STATIC_HTTPX2, OURS_HTTPX2, AUTHLIB)
RESOURCES = len(ROUTES)
# Where a contender has no figure: the static header is a baseline, not token management.
NOT_APPLICABLE = "—"


@dataclass
class Results:
    """Every figure of a run, by scenario and contender."""

    sizes: Sizes
    warm: dict[str, Warm] = field(default_factory=dict)
    burst: dict[str, Burst] = field(default_factory=dict)
    storm: dict[str, Storm] = field(default_factory=dict)
    rollover: dict[str, Rollover] = field(default_factory=dict)
    failing: dict[str, FailingEndpoint] = field(default_factory=dict)
    fleet: dict[str, Fleet] = field(default_factory=dict)
    threads: dict[str, Threads] = field(default_factory=dict)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.0995 else f"{seconds * 1000:.1f} ms"


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


Figures = TypeVar("Figures")


def _row(
    label: str,
    results: Mapping[str, Figures],
    cell: Callable[[Figures], str],
    columns: tuple[str, ...] = COLUMNS,
) -> str:
    cells = (cell(results[name]) if name in results else NOT_APPLICABLE for name in columns)
    return f"| {label} | " + " | ".join(cells) + " |"


def _header(columns: tuple[str, ...]) -> list[str]:
    return ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]


def _managed(results: Mapping[str, Figures]) -> dict[str, Figures]:
    """Without the static headers: their tokens were minted beforehand, by nobody's requests."""
    return {name: f for name, f in results.items() if name not in (STATIC, STATIC_HTTPX2)}


def _warm(figures: Warm) -> str:
    if figures.ratio == 1.0:
        return f"{figures.seconds * 1e6:.0f} µs"
    return f"{figures.seconds * 1e6:.0f} µs ({_percent(figures.ratio)})"


def _worst(figures: Rollover) -> str:
    requests = figures.stream
    return f"{_ms(requests.worst)} ({(requests.worst - requests.steady) * 1000:+,.0f} ms)"


def _failing(figure: Callable[[Stream], str]) -> Callable[[FailingEndpoint], str]:
    """A figure of the failing endpoint's stream, or why there was none."""
    return lambda figures: (
        f"{figures.start_error}" if figures.stream is None else figure(figures.stream)
    )


def _failed(requests: Stream) -> str:
    """How many requests failed, and why, most common first."""
    if not requests.failed:
        return "0"
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in requests.failures.most_common())
    return f"{requests.failed:,} ({kinds})"


def _first_success(requests: Stream) -> str:
    first = requests.first_success
    return "never" if first is None else f"after {first:.1f} s"


def table(results: Results) -> str:
    """The side-by-side table: a row per figure, a column per contender."""
    sizes = results.sizes
    burst, storm, rollover = results.burst, results.storm, results.rollover
    static_rate = results.threads[STATIC].warm_rate if STATIC in results.threads else None

    def rate(figures: Threads) -> str:
        if static_rate is None or figures.warm_rate == static_rate:
            return f"{figures.warm_rate:,.0f}"
        return f"{figures.warm_rate:,.0f} ({_percent(figures.warm_rate / static_rate)})"

    rows = [
        *_header(COLUMNS),
        _row("**Warm request**: time per request", results.warm, _warm),
        _row(
            f"**Cold burst** of {sizes.burst:,}: token requests",
            _managed(burst),
            lambda f: str(f.token_requests),
        ),
        _row("Cold burst: failed requests", burst, lambda f: f"{f.failed:,}"),
        _row("Cold burst: longest event-loop stall", burst, lambda f: _ms(f.longest_stall)),
        _row(
            f"**Revocation storm** of {sizes.burst:,}: token requests",
            storm,
            lambda f: str(f.token_requests),
        ),
        _row("Revocation storm: failed requests", storm, lambda f: f"{f.failed:,}"),
        _row("**Rollover**: steady-state latency", rollover, lambda f: _ms(f.stream.steady)),
        _row("Rollover: worst latency", rollover, _worst),
        _row("Rollover: requests over 100 ms", rollover, lambda f: str(f.stream.slow)),
        _row("Rollover: token requests", _managed(rollover), lambda f: str(f.token_requests)),
        _row("Rollover: failed requests", rollover, lambda f: f"{f.stream.failed:,}"),
        _row(
            "**Failing token endpoint**: token requests",
            results.failing,
            lambda f: str(f.token_requests),
        ),
        _row("Failing token endpoint: failed requests", results.failing, _failing(_failed)),
        _row("Failing token endpoint: first success", results.failing, _failing(_first_success)),
        _row(
            "Failing token endpoint: worst latency",
            results.failing,
            _failing(lambda s: _ms(s.worst)),
        ),
        _row(
            f"**Fleet** of {sizes.processes} processes: token requests at the cold start",
            results.fleet,
            lambda f: str(f.cold_token_requests),
        ),
        _row(
            "Fleet: token requests at the rollover",
            results.fleet,
            lambda f: str(f.rollover_token_requests),
        ),
        _row("Fleet: failed requests", results.fleet, lambda f: f"{f.failed:,}"),
        _row(
            f"**Sync**, {sizes.threads} threads: token requests from cold",
            _managed(results.threads),
            lambda f: str(f.cold_token_requests),
        ),
        _row("Sync: failed requests from cold", results.threads, lambda f: f"{f.cold_failed:,}"),
        _row("Sync: requests per second, warm", results.threads, rate),
    ]
    return "\n".join(rows)


def httpx2_table(results: Results) -> str:
    """The figures that depend most on the HTTP library, on Authlib's: httpx2."""
    burst = results.burst
    return "\n".join(
        [
            *_header(HTTPX2_COLUMNS),
            _row("**Warm request**: time per request", results.warm, _warm, HTTPX2_COLUMNS),
            _row(
                f"**Cold burst** of {results.sizes.burst:,}: token requests",
                _managed(burst),
                lambda f: str(f.token_requests),
                HTTPX2_COLUMNS,
            ),
            _row("Cold burst: failed requests", burst, lambda f: str(f.failed), HTTPX2_COLUMNS),
            _row(
                "Cold burst: longest event-loop stall",
                burst,
                lambda f: _ms(f.longest_stall),
                HTTPX2_COLUMNS,
            ),
            _row(
                "**Failing token endpoint**: token requests",
                results.failing,
                lambda f: str(f.token_requests),
                HTTPX2_COLUMNS,
            ),
            _row(
                "Failing token endpoint: failed requests",
                results.failing,
                _failing(_failed),
                HTTPX2_COLUMNS,
            ),
            _row(
                "Failing token endpoint: worst latency",
                results.failing,
                _failing(lambda s: _ms(s.worst)),
                HTTPX2_COLUMNS,
            ),
        ]
    )


@dataclass(frozen=True, slots=True)
class Goal:
    """A target of MosaicAuth's, or a check that the run itself worked, and how it went."""

    met: bool
    figure: str
    timed: bool
    """A timing, which a busy machine can miss; the others are counts, which must hold."""


def verdict(checked: Sequence[Goal], *, quick: bool) -> tuple[list[str], bool]:
    """The lines that end a run's report, and whether every count held.

    A count that is off is a bug, of the library or of the benchmark, at any size: each is
    named, and fails the run. The timings are goals, shown after a full run only (a quick
    run's tiny sizes make them meaningless), each as met or not met but never as a failure:
    on a shared machine with two cores they move by a third from one minute to the next, so a
    run that failed on them would fail for the machine's load, not for the library.
    """
    counts = [goal for goal in checked if not goal.timed]
    off = [goal for goal in counts if not goal.met]
    lines = [f"count off: {goal.figure}" for goal in off]
    if off:
        lines.append(f"Counts: {len(off)} of {len(counts)} off.")
    else:
        lines.append(f"Counts: all {len(counts)} hold (token requests, failed requests).")
    if quick:
        lines.append("Timings at these sizes mean nothing: no goals are shown for a quick run.")
        return lines, not off
    timed = [goal for goal in checked if goal.timed]
    lines += ["", "Timing goals, on this machine at this minute (reported, not enforced):"]
    lines += [f"  goal {'met' if goal.met else 'not met'}: {goal.figure}" for goal in timed]
    met = sum(goal.met for goal in timed)
    lines.append(f"Timing goals: {met} of {len(timed)} met on this run.")
    return lines, not off


def goals(results: Results) -> list[Goal]:
    """Whether MosaicAuth met each target, and the static header's requests all succeeded."""
    met: list[Goal] = []
    static_failures = sum(
        results.burst[name].failed for name in (STATIC, STATIC_HTTPX2) if name in results.burst
    ) + sum(results.rollover[name].stream.failed for name in (STATIC,) if name in results.rollover)
    met.append(
        Goal(static_failures == 0, f"static header requests failed: {static_failures}", False)
    )
    if OURS in results.warm:
        ratio = results.warm[OURS].ratio
        met.append(
            Goal(ratio <= 1.03, f"warm cost within 3 % of a static header: {_percent(ratio)}", True)
        )
    token_requests = {
        "cold burst": {name: f.token_requests for name, f in results.burst.items()},
        "revocation storm": {name: f.token_requests for name, f in results.storm.items()},
        "rollover": {name: f.token_requests for name, f in results.rollover.items()},
    }
    for label, made in token_requests.items():
        if OURS in made:
            figure = f"one token request per resource in the {label}: {made[OURS]} for {RESOURCES}"
            met.append(Goal(made[OURS] == RESOURCES, figure, False))
    for label, scenario in (("cold burst", results.burst), ("revocation storm", results.storm)):
        if OURS in scenario:
            failed = scenario[OURS].failed
            met.append(Goal(failed == 0, f"no failed request in the {label}: {failed}", False))
    for ours in (OURS, OURS_HTTPX2):
        outage = results.failing.get(ours)
        if outage is not None:
            # Requests that failed for want of a token: what the HTTP client's own pool
            # timeouts do under the burst that follows is the client's.
            lost = (
                outage.start_error
                if outage.stream is None
                else outage.stream.failures["TokenRequestError"]
            )
            figure = (
                f"the failing token endpoint, {ours}: no request failed for want of a token "
                f"({lost}), at most 4 token requests ({outage.token_requests})"
            )
            met.append(Goal(lost == 0 and outage.token_requests <= 4, figure, False))
    for ours, static, library in ((OURS, STATIC, "httpx"), (OURS_HTTPX2, STATIC_HTTPX2, "httpx2")):
        if ours in results.burst and static in results.burst:
            over = results.burst[ours].longest_stall - results.burst[static].longest_stall
            figure = (
                f"longest event-loop stall at most 10 ms over the static header's, on {library}: "
                f"{over * 1000:+.1f} ms"
            )
            met.append(Goal(over <= 0.010, figure, True))
    if OURS in results.rollover:
        requests = results.rollover[OURS].stream
        over = requests.worst - requests.steady
        figure = (
            "no rollover request more than 10 ms slower than steady state: "
            f"the worst {over * 1000:+.1f} ms"
        )
        met.append(Goal(over <= 0.010, figure, True))
    return met


def plot_rollover(rollovers: Mapping[str, Rollover], sizes: Sizes, path: Path) -> bool:
    """Draw each contender's rollover stream, latency over time; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [name for name in COLUMNS if name in rollovers]
    figure, axes = plt.subplots(
        len(names), 1, sharex=True, sharey=True, figsize=(9, 1.9 * len(names) + 0.8)
    )
    for axis, name in zip(axes, names, strict=True):
        samples = rollovers[name].stream.samples
        axis.scatter(
            [s.due for s in samples],
            [s.latency * 1000 for s in samples],
            s=6,
            c=["tab:blue" if s.ok else "tab:red" for s in samples],
        )
        axis.axhline(100, color="grey", linewidth=0.8, linestyle="--")
        axis.set_yscale("log")
        axis.set_title(name, loc="left", fontsize=10)
        axis.set_ylabel("latency (ms)")
    axes[-1].set_xlabel(
        f"seconds into the stream ({sizes.stream_rate:.0f} requests/s; "
        f"tokens live {sizes.token_lifetime:.0f} s; token endpoint answers in "
        f"{sizes.token_delay * 1000:.0f} ms; red: failed)"
    )
    figure.suptitle("Requests across a token refresh")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
