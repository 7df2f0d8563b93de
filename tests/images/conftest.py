"""Tier T3 fixtures: build the three images with buildah and start their entrypoints.

The images are built by ``scripts/build-images.sh`` (buildah, chroot isolation,
over a debootstrap stand-in for ``python:3.11-slim-bookworm``; the script says
how the stand-in differs from the real base). Nothing here skips: a machine
without buildah fails these tests (the build script installs it as root).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.images.harness import REPORT, WorkingContainer, build_images
from tests.support.stack import running_redis


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    """Runs scripts/build-images.sh once per session; service -> image reference."""
    return build_images()


@pytest.fixture
def container_factory() -> Iterator[Callable[[str], WorkingContainer]]:
    """Makes working containers; stops their processes and removes them at teardown."""
    made: list[WorkingContainer] = []

    def make(image: str) -> WorkingContainer:
        ctr = WorkingContainer(image)
        made.append(ctr)
        return ctr

    yield make
    for ctr in reversed(made):
        ctr.close()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, stopped at teardown."""
    with running_redis(tmp_path / "redis") as server:
        yield server.url(0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    sizes = REPORT.get("sizes")
    if not sizes:
        return
    terminalreporter.section("T3 images (sizes from buildah images)")
    seconds = REPORT.get("build_seconds")
    if seconds is not None:
        terminalreporter.write_line(f"scripts/build-images.sh took {seconds:.1f}s in this run")
    for ref, size in sizes.items():
        terminalreporter.write_line(f"{ref:<60} {size or 'missing'}")
