"""What `make bench` prints, where it draws its plot, and how it is run: without running it.

The benchmarks take minutes (a quick run, one); these tests give their report made-up figures.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from benchmarks._report import Results

ROOT = Path(__file__).parent.parent
MARKS = ("✓", "✗")


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`benchmarks.__main__`, where the bench extra is installed (Python 3.11 and newer)."""
    for extra in ("httpx2", "httpx_auth", "authlib"):
        pytest.importorskip(extra)
    import benchmarks.__main__

    # `main` sets the process's SIGTERM handler, as a program of its own should: not here.
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    return benchmarks.__main__


def results(*, rollover_worst: float = 0.009, burst_token_requests: int = 3) -> Results:
    """A run's figures, MosaicAuth's and the static header's, as the report reads them."""
    from benchmarks._contenders import OURS, OURS_HTTPX2, STATIC, STATIC_HTTPX2
    from benchmarks._load import Sample, Stream
    from benchmarks._report import Results
    from benchmarks._scenarios import Burst, FailingEndpoint, Rollover, Storm
    from benchmarks._sizes import QUICK
    from benchmarks._warm import Warm

    def stream(worst: float) -> Stream:
        return Stream(
            [Sample(due=0.1 * n, latency=0.004, failure=None) for n in range(9)]
            + [Sample(due=1.0, latency=worst, failure=None)]
        )

    figures = Results(QUICK)
    figures.warm = {STATIC: Warm(270e-6, 1.0), OURS: Warm(277e-6, 1.02)}
    figures.burst = {
        STATIC: Burst(0, 0, 0.5),
        OURS: Burst(burst_token_requests, 0, 0.3),
        STATIC_HTTPX2: Burst(0, 0, 0.5),
        OURS_HTTPX2: Burst(3, 0, 0.2),
    }
    figures.storm = {OURS: Storm(3, 0)}
    figures.rollover = {
        STATIC: Rollover(0, stream(0.008)),
        OURS: Rollover(3, stream(rollover_worst)),
    }
    figures.failing = {name: FailingEndpoint(4, stream(1.0)) for name in (OURS, OURS_HTTPX2)}
    return figures


@dataclass(frozen=True)
class Run:
    """What a run printed, the plots it drew, and its exit code."""

    output: str
    drawn: list[Path]
    code: int | str | None


@pytest.fixture
def run(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """Run `python -m benchmarks *argv` on made-up figures, measuring and drawing nothing."""

    def run(figures: Results, *argv: str) -> Run:
        drawn: list[Path] = []

        def draw(rollovers: object, sizes: object, path: Path) -> bool:
            drawn.append(path)
            return True

        monkeypatch.setattr(bench, "measure", lambda sizes: figures)
        monkeypatch.setattr(bench, "plot_rollover", draw)
        try:
            bench.main(list(argv))
        except SystemExit as exit:
            return Run(capsys.readouterr().out, drawn, exit.code)
        return Run(capsys.readouterr().out, drawn, 0)

    return run


@pytest.fixture(params=[["--quick"], []], ids=["quick", "full"])
def size(request: pytest.FixtureRequest) -> list[str]:
    """The command line of a quick run, then of a full one."""
    argv: list[str] = request.param
    return argv


def test_a_quick_run_shows_no_goals_and_no_marks(run: Callable[..., Run]) -> None:
    """A quick run whose counts hold passes, says so in a line, and shows no goal nor mark, even
    for a timing its tiny sizes missed."""
    ran = run(results(rollover_worst=0.5), "--quick")
    assert ran.code == 0
    assert "Counts: all 8 hold" in ran.output
    assert "goal met" not in ran.output
    assert "goal not met" not in ran.output
    assert not any(mark in ran.output for mark in MARKS)


def test_a_count_that_is_off_fails_the_run(run: Callable[..., Run], size: list[str]) -> None:
    """More token requests than resources fails a quick run and a full one, naming the count."""
    ran = run(results(burst_token_requests=4), *size)
    assert ran.code not in (0, None)
    assert "count off: one token request per resource in the cold burst: 4 for 3" in ran.output
    assert "Counts: 1 of 8 off." in ran.output


def test_a_full_run_reports_timing_goals_without_failing(run: Callable[..., Run]) -> None:
    """A timing goal missed on a full run is a neutral "goal not met" line and a summary, and
    the run passes; no line carries a pass or fail mark."""
    ran = run(results(rollover_worst=0.5))
    assert ran.code == 0
    assert "  goal met: warm cost within 3 % of a static header: +2.0 %" in ran.output
    assert "  goal not met: no rollover request more than 10 ms slower" in ran.output
    assert re.search(r"^Timing goals: 3 of 4 met on this run\.$", ran.output, re.MULTILINE)
    assert not any(mark in ran.output for mark in MARKS)


def test_a_run_draws_its_plot_where_git_ignores_it(
    bench: ModuleType, run: Callable[..., Run], size: list[str]
) -> None:
    """By default the plot goes to a path git ignores, which the run prints, never to the
    README's tracked benchmarks/rollover.png."""
    ran = run(results(), *size)
    assert ran.drawn == [bench.SCRATCH_PLOT]
    assert f"Rollover plot: {bench.shown(bench.SCRATCH_PLOT)}" in ran.output
    assert bench.README_PLOT == ROOT / "benchmarks" / "rollover.png"
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(  # noqa: S603 - git, on this checkout's own paths
            ["git", "check-ignore", "--quiet", bench.SCRATCH_PLOT],  # noqa: S607
            cwd=ROOT,
            check=False,
        )
        assert ignored.returncode == 0


def test_the_readme_plot_is_drawn_when_asked_for(run: Callable[..., Run], tmp_path: Path) -> None:
    """`--plot PATH` draws the plot there: how the README's is refreshed."""
    ran = run(results(), "--plot", str(tmp_path / "rollover.png"))
    assert ran.drawn == [tmp_path / "rollover.png"]


def test_help_says_how_long_each_run_takes(bench: ModuleType) -> None:
    """`python -m benchmarks --help` gives the durations of a full run and of a quick one."""
    text = " ".join(bench.arguments().format_help().split())
    assert re.search(r"A full run takes about \d+ minutes", text)
    assert re.search(r"`make bench`, .* about \d+ \(\d+ min \d+ s\)", text)
    assert re.search(r"`--quick` .* takes about a minute", text)


def dry_run(*variables: str) -> list[str]:
    """The benchmark commands `make bench` would run with these variables."""
    made = subprocess.run(  # noqa: S603 - make, on this checkout's Makefile
        ["make", "--dry-run", "--always-make", "bench", *variables],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [" ".join(line.split()) for line in made.stdout.splitlines() if "benchmarks" in line]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_bench_takes_quick_and_plot() -> None:
    """`make bench QUICK=1` is the quick run alone; PLOT=path draws the plot there; plain
    `make bench` is the full run, the import costs after it."""
    assert dry_run("QUICK=1") == [".venv/bin/python -m benchmarks --quick"]
    assert dry_run() == [
        ".venv/bin/python -m benchmarks",
        ".venv/bin/python benchmarks/startup_cost.py",
    ]
    assert dry_run("PLOT=benchmarks/rollover.png")[0] == (
        ".venv/bin/python -m benchmarks --plot benchmarks/rollover.png"
    )


def test_the_readme_says_how_to_run_the_benchmarks() -> None:
    """The README's Performance section names the quick run and how to refresh its plot."""
    readme = (ROOT / "README.md").read_text()
    performance = readme[readme.index("## Performance") : readme.index("## Errors")]
    assert "`make bench QUICK=1`" in performance
    assert "`make bench PLOT=benchmarks/rollover.png`" in performance
