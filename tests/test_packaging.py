"""What a user installs: the version, the wheel and sdist's contents, and what importing costs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import mosaic_httpx_auth

ROOT = Path(__file__).parent.parent


def python(code: str, *arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (this one's), as a user's process would."""
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version_is_the_installed_distributions() -> None:
    """`__version__`, the one place the version is written, is what the metadata says."""
    assert mosaic_httpx_auth.__version__ == importlib.metadata.version("mosaic-httpx-auth")


@pytest.mark.parametrize(
    ("name", "extra", "vulnerable"),
    [("httpcore", None, "1.0.8"), ("h11", "emulator", "0.14.0")],
)
def test_the_dependency_floors_exclude_known_vulnerable_releases(
    name: str, extra: str | None, vulnerable: str
) -> None:
    """No installation the metadata allows can bring h11 < 0.16 (CVE-2025-43859): through
    httpcore for the library, directly for the emulator's uvicorn."""
    from packaging.requirements import Requirement

    requirements = [
        Requirement(text) for text in importlib.metadata.requires("mosaic-httpx-auth") or []
    ]
    floors = [
        requirement
        for requirement in requirements
        if requirement.name == name
        and (requirement.marker is None) == (extra is None)
        and (extra is None or requirement.marker.evaluate({"extra": extra}))  # type: ignore[union-attr]
    ]
    assert floors
    assert not any(requirement.specifier.contains(vulnerable) for requirement in floors)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist, built from this checkout by hatchling's PEP 517 hooks."""
    out = tmp_path_factory.mktemp("dist")
    files = {}
    for kind in ("wheel", "sdist"):
        build = f"from hatchling.build import build_{kind} as build\n"
        finished = python(build + "import sys\nprint(build(sys.argv[1]))", str(out))
        assert finished.returncode == 0, finished.stderr
        files[kind] = out / finished.stdout.strip().splitlines()[-1]
    return files


def test_the_wheel_carries_the_license_the_plugin_and_the_metadata(built: dict[str, Path]) -> None:
    """The wheel holds the package, py.typed, the pytest plugin module and the LICENSE, and its
    metadata names the version, project URLs and exceptiongroup for Python 3.10."""
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        dist_info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
        metadata = Parser().parsestr(wheel.read(f"{dist_info}/METADATA").decode())
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "pytest_mosaic_httpx_auth.py" in names
    assert "mosaic_httpx_auth/py.typed" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert metadata["Version"] == mosaic_httpx_auth.__version__
    # Each project URL resolves: none names the package index page of an unpublished release.
    urls = metadata.get_all("Project-URL") or []
    assert urls
    assert not any("pypi.org" in url for url in urls)
    assert any(
        "exceptiongroup" in requirement and "python_version < '3.11'" in requirement
        for requirement in metadata.get_all("Requires-Dist") or []
    )
    assert "pytest_mosaic_httpx_auth = pytest_mosaic_httpx_auth" in entry_points


def test_the_sdist_carries_the_license_and_the_changelog(built: dict[str, Path]) -> None:
    """The sdist holds LICENSE, CHANGELOG.md and README.md beside the code."""
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pytest_mosaic_httpx_auth.py"} <= names


def test_importing_the_library_loads_no_jose_machinery() -> None:
    """`import mosaic_httpx_auth` loads neither joserfc nor cryptography (only a private key
    needs them), nor asyncio, which a trio program need not load."""
    finished = python(
        "import sys, mosaic_httpx_auth\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('joserfc', 'cryptography', 'asyncio')))"
    )
    assert finished.stdout.strip() == "[]", finished.stderr


def test_the_pytest_plugin_imports_nothing_until_a_fixture_is_used() -> None:
    """Loading the plugin module, as pytest does in every project, imports nothing else."""
    finished = python(
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import pytest_mosaic_httpx_auth\n"
        "print(sorted(set(sys.modules) - before))"
    )
    assert finished.stdout.strip() == "['pytest_mosaic_httpx_auth']", finished.stderr


@pytest.mark.parametrize(("options", "outcome"), [((), "1 passed"), (("-p", "no:X"), "error")])
def test_the_plugin_is_on_by_default_and_off_by_its_name(
    tmp_path: Path, options: tuple[str, ...], outcome: str
) -> None:
    """In another project, the fixtures are there; `-p no:pytest_mosaic_httpx_auth` removes
    them."""
    (tmp_path / "test_uses_the_fixture.py").write_text(
        "def test_it(mosaic_emulator):\n    assert mosaic_emulator.token_requests == {}\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    options = tuple(option.replace("X", "pytest_mosaic_httpx_auth") for option in options)
    finished = python(
        "import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))",
        "-q",
        "-p",
        "no:cacheprovider",
        *options,
        cwd=tmp_path,
    )
    assert outcome in finished.stdout, finished.stdout
    if outcome == "error":
        assert "fixture 'mosaic_emulator' not found" in finished.stdout


def test_the_changelog_opens_with_this_version() -> None:
    """The changelog's newest section is this release's, so a reader finds what it offers."""
    changelog = (Path(__file__).parent.parent / "CHANGELOG.md").read_text()
    newest = next(line for line in changelog.splitlines() if line.startswith("## "))
    assert newest.startswith(f"## [{mosaic_httpx_auth.__version__}]")
