"""The tenant API phase with a few messages and two clients for a fraction of a
second: every request answers 200 and every kind is counted. No assertion here
is about speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks import api_phase
from benchmarks.environment import child_env, database, settings_for

if TYPE_CHECKING:
    from pathlib import Path


def test_api_phase_reads_details_pages_and_attachments(tmp_path: Path) -> None:
    with database(tmp_path) as url:
        result = api_phase.run_phase(
            settings_for(tmp_path, url, "api"),
            child_env(tmp_path, url, "api"),
            tmp_path,
            count=120,
            clients=2,
            duration=0.3,
            attachment_kb=16,
        )
    for kind in ("detail", "list", "download"):
        assert result[kind]["requests"] > 0, kind
        assert result[kind]["errors"] == 0, kind
        assert result[kind]["latency"]["count"] == result[kind]["requests"]
    # each download is a whole 16 KiB attachment
    download = result["download"]
    assert download["mb_per_s"] >= 0
    assert "| GET /v1/messages/{id} |" in api_phase.markdown(result)
