"""The purge phase with a few hundred stored messages: every one is due and
removed, with its objects. No assertion here is about speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks import purge_phase
from benchmarks.environment import database
from ingest_core.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


def test_purge_phase_removes_every_seeded_message(tmp_path: Path) -> None:
    with database(tmp_path) as url:
        settings = Settings(
            data_dir=tmp_path, database_url=url, queue_url=f"sqlite:///{tmp_path / 'q.db'}"
        )
        result = purge_phase.run_phase(settings, 300)
    assert result["removed"] == 300
    assert result["left"] == 0
    assert result["attachments_removed"] == 75
    assert result["objects_removed"] == 375
    assert result["objects_failed"] == 0
    assert result["messages_per_s"] > 0
    assert not any((tmp_path / "objects" / "raw").rglob("*.eml"))
    assert "| ingest purge | 300 | 375 |" in purge_phase.markdown(result)
