"""The container stack tier (tests/containers/container_stack.py has the topology).

Run by ``just containers`` (scripts/containers.sh), which builds the images and names
them in INGEST_STACK_INGEST_IMAGE, INGEST_STACK_POSTFIX_IMAGE and
INGEST_STACK_SERVICES_IMAGE. Without them the tier is skipped, except under CI=true,
where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

import pytest
from container_stack import Stack, running_stack

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator


def _images() -> dict[str, str]:
    images = {
        kind: os.environ.get(f"INGEST_STACK_{kind.upper()}_IMAGE", "")
        for kind in ("ingest", "postfix", "services")
    }
    missing = [kind for kind, image in images.items() if not image]
    reason = ""
    if missing:
        reason = f"no image for {', '.join(missing)} (INGEST_STACK_*_IMAGE)"
    elif shutil.which("podman") is None:
        reason = "podman is not installed"
    if reason:
        message = f"container stack prerequisites missing: {reason}; run `just containers`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return images


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(_images(), tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed scenario's report carries the containers' last log lines."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.when == "call" and report.failed and isinstance(stack, Stack):
        report.sections.append(("container logs", stack.log_tails()))
    return report
