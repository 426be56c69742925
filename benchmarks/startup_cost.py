"""What installing and importing mosaic-httpx-auth costs a process that starts.

- `import mosaic_httpx_auth` against `import httpx`, each in a fresh interpreter;
- an unrelated project's 200 tests under pytest, with this package's plugin loaded (as it is
  wherever the package is installed) and with it turned off (`-p no:pytest_mosaic_httpx_auth`).

Medians of interleaved runs, so that machine noise hits both sides alike.
Run: `.venv/bin/python benchmarks/startup_cost.py` (part of `make bench`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 11
TESTS = 200


def seconds(command: list[str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - started


def medians(commands: dict[str, list[str]], cwd: Path | None = None) -> dict[str, float]:
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(ROUNDS):
        for name, command in commands.items():
            runs[name].append(seconds(command, cwd))
    return {name: statistics.median(times) * 1000 for name, times in runs.items()}


def main() -> None:
    python = sys.executable
    imports = medians(
        {
            "bare interpreter": [python, "-c", "pass"],
            "import httpx": [python, "-c", "import httpx"],
            "import mosaic_httpx_auth": [python, "-c", "import mosaic_httpx_auth"],
        }
    )
    bare = imports.pop("bare interpreter")
    print(f"import, over a bare interpreter ({bare:.0f} ms), median of {ROUNDS}:")
    for name, milliseconds in imports.items():
        print(f"  {name:26s} {milliseconds - bare:6.1f} ms")

    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        (project / "pytest.ini").write_text("[pytest]\n")
        tests = "".join(f"def test_{n}():\n    assert {n} == {n}\n" for n in range(TESTS))
        (project / "test_unrelated.py").write_text(tests)
        pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        runs = medians(
            {
                "plugin loaded": pytest,
                "plugin turned off": [*pytest, "-p", "no:pytest_mosaic_httpx_auth"],
            },
            cwd=project,
        )
    print(f"an unrelated project's {TESTS} tests under pytest, median of {ROUNDS}:")
    for name, milliseconds in runs.items():
        print(f"  {name:26s} {milliseconds:6.1f} ms")


if __name__ == "__main__":
    main()
