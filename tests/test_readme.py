"""Every Python snippet in the README runs, as it is written there, against the emulator."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mosaic_httpx_auth import RISK_RESOURCE, VERIFY_RESOURCE
from mosaic_httpx_auth.testing import MosaicEmulator

README = Path(__file__).parent.parent / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
# The README's test is a pytest module: it runs under pytest, the rest as scripts.
TESTS = [snippet for snippet in SNIPPETS if "def test_" in snippet]
SCRIPTS = [snippet for snippet in SNIPPETS if "def test_" not in snippet]


def first_line(snippet: str) -> str:
    return next(line for line in snippet.splitlines() if line and not line.startswith("import"))


@pytest.fixture
def mosaic(monkeypatch: pytest.MonkeyPatch) -> MosaicEmulator:
    """An emulator that knows the README's made-up credentials and answers every request an
    `httpx.AsyncClient` without a transport of its own sends."""
    emulator = MosaicEmulator()
    emulator.register_client(
        client_id="my-client-id",
        client_secret="my-client-secret",
        resources=[RISK_RESOURCE, VERIFY_RESOURCE],
    )
    emulator.register_client(
        client_id="management-app-client-id",
        client_secret="management-app-client-secret",
        management=True,
    )
    monkeypatch.setenv("MOSAIC_CLIENT_ID", "my-client-id")
    monkeypatch.setenv("MOSAIC_CLIENT_SECRET", "my-client-secret")
    monkeypatch.setattr(httpx._client, "AsyncHTTPTransport", lambda **_: emulator.transport())
    monkeypatch.setattr(httpx._client, "HTTPTransport", lambda **_: emulator.transport())
    return emulator


def test_the_readme_has_snippets_of_both_kinds() -> None:
    """The extraction finds the README's snippets: tests, an async one and a sync one, and
    scripts."""
    assert [snippet.count("async def test_") for snippet in TESTS] == [1, 0]
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("snippet", SCRIPTS, ids=first_line)
def test_a_readme_snippet_runs(snippet: str, mosaic: MosaicEmulator) -> None:
    """The snippet runs as a script; its `main()`, if it has one, runs against the emulator."""
    if "import httpx2" in snippet:
        pytest.importorskip("httpx2", reason="httpx2 needs Python 3.11")
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(snippet, str(README), "exec"), namespace)  # noqa: S102 - our README's code
    main = namespace.get("main")
    if inspect.iscoroutinefunction(main):
        anyio.run(main)
    elif main is not None:
        main()
    if main is not None:
        assert sum(mosaic.token_requests.values()) == 1


def test_the_readme_tests_pass_under_plain_pytest(tmp_path: Path) -> None:
    """The README's tests, each saved as a file in a project of their own, pass under pytest."""
    for number, snippet in enumerate(TESTS):
        (tmp_path / f"test_readme_{number}.py").write_text(snippet)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    passed = set(re.findall(r"::(test_\w+)\S* PASSED", finished.stdout))
    assert passed == set(re.findall(r"def (test_\w+)", "".join(TESTS)))


def test_the_first_snippet_runs_against_the_emulator_command_as_the_readme_says(
    tmp_path: Path,
) -> None:
    """A newcomer's first hour: `mosaic-httpx-auth emulator`, its `export` lines, and the
    README's first snippet saved as a script, run as it is: over real sockets, it prints the
    risk API's answer."""
    from .test_cli import emulator_command, exported

    (tmp_path / "first.py").write_text(SCRIPTS[0])
    with emulator_command() as banner:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_")}
        finished = subprocess.run(  # noqa: S603 - our own interpreter, our README's code
            [sys.executable, str(tmp_path / "first.py")],
            env={**environment, **exported(banner)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert finished.returncode == 0, finished.stderr
    assert "recommendation" in finished.stdout
