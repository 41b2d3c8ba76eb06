"""The events phase with a few messages: each accepted message's event reaches
the local receiver once the worker dispatches. No assertion here is about speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from benchmarks import events_phase
from benchmarks.environment import child_env, database, settings_for

if TYPE_CHECKING:
    from pathlib import Path


def test_receiver_answers_200_and_counts() -> None:
    with events_phase.Receiver() as receiver:
        for _ in range(3):
            assert httpx.post(receiver.url, content=b"{}").status_code == 200
    assert receiver.count == 3
    assert receiver.first is not None
    assert receiver.last is not None
    assert receiver.last >= receiver.first


def test_events_phase_delivers_every_event(tmp_path: Path) -> None:
    with database(tmp_path) as url:
        result = events_phase.run_phase(
            settings_for(tmp_path, url, "events"),
            child_env(tmp_path, url, "events"),
            tmp_path,
            count=12,
            connections=3,
            workers=1,
            timeout_s=30.0,
        )
    assert result["accept"]["accepted"] == 12
    assert result["accept"]["errors"] == {}
    assert result["expected"] == 12
    assert result["delivered"] == 12
    assert result["events_per_s_from_start"] > 0
    assert "| events delivered / expected | 12 / 12 |" in events_phase.markdown(result)
