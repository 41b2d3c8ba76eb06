"""GET /v1/messages/{id}/body over real sockets on the test Postgres: 409 until
extraction stored the bodies, then the decoded text; foreign ids 404; a message
extracted before bodies were kept is backfilled by ``ingest replay``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ingest_core.extraction import PARSER_VERSION, extract_message
from tests.procs import ingest_env, run_ingest
from tests.server.test_api import _auth, _message, api  # noqa: F401  (the fixture)

if TYPE_CHECKING:
    from pathlib import Path

ORDER = (
    b"From: buyer@example.com\r\nSubject: order\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=windows-1252\r\n\r\n"
    b"Ship 10 widgets to dock 4 \x96 thanks.\r\n\r\n"
    b"On Mon, 30 Nov 2026, Alice <alice@example.com> wrote:\r\n> How many?\r\n"
)


def _extract(app, message_id: uuid.UUID) -> None:
    result = extract_message(
        message_id, repo=app.repository, store=app.store, config=app.extraction
    )
    assert result.outcome.value == "processed", result.error


async def test_body_is_409_until_extracted_then_served(api) -> None:  # noqa: F811
    app, client = api
    acme = _auth(app.tokens.issue("acme", "t").token)
    globex = _auth(app.tokens.issue("globex", "t").token)
    mid, _ = _message(app, "acme", ORDER)
    path = f"/v1/messages/{mid}/body"
    early = await client.get(path, headers=acme)
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"
    assert early.json()["title"] == "Conflict"

    _extract(app, mid)
    reply = await client.get(path, headers=acme)
    assert reply.status_code == 200
    body = reply.json()
    assert body["text"].startswith("Ship 10 widgets to dock 4 \u2013 thanks.")
    assert body["reply"] == "Ship 10 widgets to dock 4 \u2013 thanks."
    assert body["quoted"] is True
    assert body["html"] is None
    assert body["text_from_html"] is False
    assert body["truncated"] is False
    for headers, target in ((globex, path), (acme, f"/v1/messages/{uuid.uuid4()}/body")):
        missing = await client.get(target, headers=headers)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "No such resource for this token."
    assert (await client.get(path)).status_code == 401


async def test_replay_backfills_the_body(api, data_dir: Path, pg_url: str) -> None:  # noqa: F811
    app, client = api
    acme = _auth(app.tokens.issue("acme", "t").token)
    mid, _ = _message(app, "acme", ORDER)
    # extracted by an older parser, which kept no body
    assert app.repository.claim(mid, 60.0) is not None
    app.repository.finish(mid, [], "mime-2")
    assert (await client.get(f"/v1/messages/{mid}/body", headers=acme)).status_code == 409

    replayed = run_ingest(ingest_env(data_dir, pg_url), "replay", str(mid))
    assert replayed.returncode == 0, replayed.stderr
    _extract(app, mid)  # what the worker does with the job replay enqueued
    reply = await client.get(f"/v1/messages/{mid}/body", headers=acme)
    assert reply.status_code == 200
    assert reply.json()["reply"].startswith("Ship 10 widgets")
    assert app.repository.get(app.tenants.resolve("acme").id, mid).parser_version == PARSER_VERSION
