"""``ingest endpoints``, ``deliveries`` and ``events`` in-process against the
test Postgres."""

from __future__ import annotations

import json

from standardwebhooks.webhooks import Webhook

from ingest_core.bootstrap import open_app
from ingest_core.settings import Settings
from tests.events.receiver import Answer, Receiver
from tests.server.test_cli import env, run  # noqa: F401  (the fixture)


def test_endpoint_administration_and_delivery(env, capsys, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("INGEST_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("INGEST_SECRET_KEY", "a key for the tests")
    receiver = Receiver()
    try:
        assert run(capsys, "tenants", "add", "acme")[0] == 0
        code, out, err = run(capsys, "endpoints", "add", "acme", receiver.url,
                             "--event", "message.received")  # fmt: skip
        assert code == 0, err
        secret = out.strip()
        assert secret.startswith("whsec_")
        assert "shown only now" in err
        code, out, _ = run(capsys, "endpoints", "list", "acme")
        assert "message.received" in out
        assert "nothing delivered yet" in out
        endpoint_id = out.splitlines()[1].split()[0]
        assert endpoint_id.startswith("ep_")

        settings = Settings.from_env()
        with open_app(settings) as app:
            with app.pool.connection() as conn:
                [row] = conn.execute("SELECT secret FROM webhook_endpoint").fetchall()
            assert secret not in row[0]  # sealed at rest
            from tests.adapters.test_message_repository_contract import message

            app.repository.record_received(message(app.tenants.resolve("acme").id))
            receiver.script.append(Answer(500))
            assert app.dispatcher().run_once() == 1

        code, out, _ = run(capsys, "deliveries", "list", "--status", "PENDING")
        assert "HTTP 500" in out
        delivery_id = out.splitlines()[1].split()[0]
        assert run(capsys, "deliveries", "retry", delivery_id)[0] == 0
        with open_app(settings) as app:
            assert app.dispatcher().run_once() == 1
        request = receiver.requests[-1]
        Webhook(secret).verify(request.body, request.headers)
        assert run(capsys, "deliveries", "retry", "--since", "1h")[0] == 1  # none undelivered
        assert run(capsys, "deliveries", "retry", "--since", "soon")[0] == 2
        code, out, _ = run(capsys, "events", "show", request.headers["webhook-id"])
        assert json.loads(out)["type"] == "message.received"

        code, out, _ = run(capsys, "endpoints", "rotate-secret", endpoint_id)
        assert code == 0
        assert out.strip().startswith("whsec_")
        assert out.strip() != secret
        assert run(capsys, "endpoints", "disable", endpoint_id)[0] == 0
        assert "disabled" in run(capsys, "endpoints", "list")[1]
        assert run(capsys, "endpoints", "enable", endpoint_id)[0] == 0
        assert run(capsys, "endpoints", "remove", endpoint_id)[0] == 0
        assert run(capsys, "endpoints", "remove", endpoint_id)[0] == 1
        with open_app(settings) as app:
            actions = [e.action for e in app.audit.events()[::-1]]
        assert [a for a in actions if a.startswith(("endpoint.", "delivery."))] == [
            "endpoint.add",
            "delivery.retry",
            "delivery.retry",  # --since 1h: recorded with count 0
            "endpoint.rotate-secret",
            "endpoint.disable",
            "endpoint.enable",
            "endpoint.remove",
        ]
    finally:
        receiver.close()


def test_a_private_endpoint_is_refused_by_default(env, capsys) -> None:  # noqa: F811
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    code, _, err = run(capsys, "endpoints", "add", "acme", "http://127.0.0.1:8080/hook")
    assert code == 1
    assert "endpoints must be public" in err
