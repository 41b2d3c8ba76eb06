"""Delivery to a real HTTP receiver on loopback, each request verified with the
``standardwebhooks`` package (an implementation of the specification
independent of ours)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ingest_core.adapters.postgres import PostgresMessageRepository, TenantAdmin
from ingest_core.adapters.postgres.webhooks import PostgresWebhooks
from ingest_core.webhooks import (
    DeliveryStatus,
    DispatchConfig,
    Dispatcher,
    EndpointError,
    Endpoints,
    SecretBox,
    schedule,
)
from tests.adapters.test_message_repository_contract import LONG_LEASE, attachment, message
from tests.events.receiver import Answer, Receiver

CONFIG = DispatchConfig(allow_private=True, timeout_s=1.0, idle_s=0.01)


def no_dns(host: str) -> list[str]:
    raise AssertionError(f"no lookup expected for {host}")


@pytest.fixture
def receiver():
    receiving = Receiver()
    yield receiving
    receiving.close()


class World:
    def __init__(self, pool, config: DispatchConfig = CONFIG) -> None:
        self.pool = pool
        self.org = TenantAdmin(pool).add("acme", "Acme")
        self.repo = PostgresMessageRepository(pool, api_url="https://api.example.test")
        self.store = PostgresWebhooks(pool)
        box = SecretBox("test key")
        self.endpoints = Endpoints(self.store, box, config, no_dns)
        self.dispatcher = Dispatcher(self.store, box, config, lookup=no_dns)

    def receive(self, smid: str = "po@example.com") -> uuid.UUID:
        return self.repo.record_received(message(self.org.id, smid=smid)).id

    def process(self, mid: uuid.UUID) -> None:
        assert self.repo.claim(mid, LONG_LEASE) is not None
        self.repo.finish(mid, [attachment("1")], "p1")

    def make_due(self) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE webhook_delivery SET next_attempt_at = now() - interval '1s'")

    def delivery(self):
        [row] = self.store.deliveries()
        return row

    def attempts(self) -> list[tuple]:
        with self.pool.connection() as conn:
            return conn.execute(
                "SELECT status_code, error FROM webhook_attempt ORDER BY id"
            ).fetchall()


@pytest.fixture
def world(pg_pool) -> World:
    return World(pg_pool)


def verified(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def test_an_event_is_signed_sent_and_logged(world: World, receiver: Receiver) -> None:
    endpoint, secret = world.endpoints.add("acme", receiver.url)
    assert secret.startswith("whsec_")
    mid = world.receive()
    assert world.dispatcher.run_once() == 1
    [request] = receiver.requests
    payload = verified(secret, request)
    assert payload["type"] == "message.received"
    assert payload["data"]["message_id"] == str(mid)
    assert request.headers["webhook-id"].startswith("evt_")
    assert request.headers["content-type"] == "application/json"
    row = world.delivery()
    assert (row.status, row.attempts, row.last_status) == (DeliveryStatus.DELIVERED, 1, 204)
    assert row.endpoint_id == endpoint.id
    assert world.attempts() == [(204, None)]
    assert world.dispatcher.run_once() == 0
    [listed] = world.store.endpoints("acme")
    assert listed.last_success_at is not None
    kind, slug, body = world.store.event(request.headers["webhook-id"])
    assert (kind, slug, json.loads(body)) == ("message.received", "acme", payload)


def test_a_wrong_secret_does_not_verify(world: World, receiver: Receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    world.receive()
    world.dispatcher.run_once()
    other = Endpoints(world.store, SecretBox(None), CONFIG, no_dns)
    with pytest.raises(WebhookVerificationError):
        verified(other.add("acme", receiver.url)[1], receiver.requests[0])


def test_events_before_an_endpoint_existed_are_not_sent_to_it(world, receiver) -> None:
    world.receive("early@example.com")
    _, secret = world.endpoints.add("acme", receiver.url, ["message.processed"])
    mid = world.receive("late@example.com")
    world.process(mid)
    assert world.dispatcher.run_once() == 1
    [request] = receiver.requests
    payload = verified(secret, request)
    assert payload["type"] == "message.processed"
    assert payload["data"]["attachment_count"] == 1


def test_a_500_is_retried_with_the_same_webhook_id(world: World, receiver: Receiver) -> None:
    _, secret = world.endpoints.add("acme", receiver.url)
    receiver.script.append(Answer(500))
    world.receive()
    world.dispatcher.run_once()
    row = world.delivery()
    assert (row.status, row.attempts, row.last_status) == (DeliveryStatus.PENDING, 1, 500)
    wait = (row.next_attempt_at - row.created_at).total_seconds()
    assert 4.0 < wait < 7.0  # 5 s with jitter
    assert world.dispatcher.run_once() == 0  # not due yet
    world.make_due()
    world.dispatcher.run_once()
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    verified(secret, second)
    assert world.delivery().status is DeliveryStatus.DELIVERED
    assert world.attempts() == [(500, "HTTP 500"), (204, None)]


def test_410_disables_the_endpoint(world: World, receiver: Receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    receiver.script.append(Answer(410))
    world.receive()
    world.dispatcher.run_once()
    assert world.delivery().status is DeliveryStatus.FAILED
    [endpoint] = world.store.endpoints("acme")
    assert endpoint.disabled_at is not None
    assert "410" in endpoint.disabled_reason
    world.receive("next@example.com")  # a disabled endpoint gets no deliveries
    assert len(world.store.deliveries()) == 1


def test_429_honours_retry_after(world: World, receiver: Receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    receiver.script.append(Answer(429, {"retry-after": "120"}))
    world.receive()
    world.dispatcher.run_once()
    row = world.delivery()
    assert row.status is DeliveryStatus.PENDING
    assert (row.next_attempt_at - row.created_at) >= timedelta(seconds=119)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(world, receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    receiver.script.append(Answer(302, {"location": "http://169.254.169.254/latest/meta-data"}))
    world.receive()
    world.dispatcher.run_once()
    assert len(receiver.requests) == 1
    row = world.delivery()
    assert (row.status, row.last_status) == (DeliveryStatus.PENDING, 302)
    assert "redirect" in row.last_error


def test_a_receiver_that_is_down_or_slow_is_retried(world, receiver, closed_port) -> None:
    world.endpoints.add("acme", f"http://127.0.0.1:{closed_port}/hook")
    world.receive()
    world.dispatcher.run_once()
    assert world.attempts() == [(None, "connection refused")]
    with world.pool.connection() as conn:
        conn.execute("DELETE FROM webhook_endpoint")
    world.endpoints.add("acme", receiver.url)
    receiver.script.append(Answer(204, delay_s=2.0))  # beyond the 1 s timeout
    world.receive("slow@example.com")
    world.dispatcher.run_once()
    assert world.attempts()[-1] == (None, "timed out")
    assert world.delivery().status is DeliveryStatus.PENDING


def test_rotation_signs_with_both_secrets(world: World, receiver: Receiver) -> None:
    endpoint, old = world.endpoints.add("acme", receiver.url)
    rotated, new = world.endpoints.rotate_secret(endpoint.id)
    assert new != old
    assert rotated.previous_until is not None
    world.receive()
    world.dispatcher.run_once()
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verified(old, request)
    verified(new, request)
    with world.pool.connection() as conn:  # the overlap ends: only the new one signs
        conn.execute("UPDATE webhook_endpoint SET previous_until = now() - interval '1s'")
    world.receive("second@example.com")
    world.dispatcher.run_once()
    later = receiver.requests[1]
    verified(new, later)
    with pytest.raises(WebhookVerificationError):
        verified(old, later)


def test_an_expired_lease_is_sent_again_and_two_dispatchers_never_share(world, receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    for n in range(5):
        world.receive(f"m{n}@example.com")
    first = world.store.claim_due(3, lease_s=60)
    second = world.store.claim_due(10, lease_s=60)
    assert len(first) == 3
    assert len(second) == 2
    assert not {d.id for d in first} & {d.id for d in second}
    assert world.store.claim_due(10, lease_s=60) == []
    # a dispatcher that died mid-send: its lease runs out, another sends it again
    with world.pool.connection() as conn:
        conn.execute("UPDATE webhook_delivery SET locked_until = now() - interval '1s'")
    again = world.store.claim_due(10, lease_s=60)
    assert {d.event_id for d in again} == {d.event_id for d in first + second}
    assert {d.attempts for d in again} == {2}


def test_the_last_failure_is_final(world: World, receiver: Receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    world.receive()
    receiver.script.extend(Answer(503) for _ in range(schedule.MAX_ATTEMPTS))
    for _ in range(schedule.MAX_ATTEMPTS):
        world.make_due()
        assert world.dispatcher.run_once() == 1
    row = world.delivery()
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, schedule.MAX_ATTEMPTS)
    assert world.store.retry(delivery_id=row.id) == 1
    assert world.dispatcher.run_once() == 1
    assert world.delivery().status is DeliveryStatus.DELIVERED
    assert world.store.retry(since=row.created_at) == 0  # delivered ones stay delivered


def test_an_endpoint_failing_for_five_days_is_disabled(world, receiver) -> None:
    world.endpoints.add("acme", receiver.url)
    with world.pool.connection() as conn:
        conn.execute("UPDATE webhook_endpoint SET created_at = now() - interval '6 days'")
    receiver.script.append(Answer(500))
    world.receive()
    world.dispatcher.run_once()
    [endpoint] = world.store.endpoints("acme")
    assert endpoint.disabled_reason == "no successful delivery for 5 days"


def test_private_addresses_are_refused_unless_allowed(pg_pool) -> None:
    strict = World(pg_pool, DispatchConfig(allow_private=False))
    for url in ("http://127.0.0.1:9/x", "http://[::ffff:10.0.0.1]/x", "http://169.254.169.254/"):
        with pytest.raises(EndpointError, match="endpoints must be public"):
            strict.endpoints.add("acme", url)
    with pytest.raises(EndpointError, match="unknown event type"):
        strict.endpoints.add("acme", "https://hooks.example.com/", ["message.exploded"])


def test_a_url_allowed_when_added_is_checked_again_at_send_time(pg_pool, receiver) -> None:
    world = World(pg_pool)
    world.endpoints.add("acme", receiver.url)
    world.receive()
    strict = Dispatcher(world.store, SecretBox("test key"), DispatchConfig(), lookup=no_dns)
    strict.run_once()
    assert receiver.requests == []
    assert "endpoints must be public" in world.delivery().last_error


def test_two_dispatchers_never_send_one_delivery_at_the_same_time(world, receiver) -> None:
    import threading

    world.endpoints.add("acme", receiver.url)
    for n in range(30):
        world.receive(f"many{n}@example.com")
    receiver.script.extend(Answer(204, delay_s=0.05) for _ in range(30))
    other = Dispatcher(world.store, SecretBox("test key"), CONFIG, lookup=no_dns)
    stop = threading.Event()
    threads = [threading.Thread(target=d.run, args=(stop,)) for d in (world.dispatcher, other)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(world.store.deliveries(status=DeliveryStatus.DELIVERED)) == 30:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == 30
    assert len(set(ids)) == 30


def test_a_dispatcher_killed_mid_send_delivers_again_with_the_same_id(world, receiver, pg_url):
    import subprocess
    import sys

    world.endpoints.add("acme", receiver.url)
    world.receive()
    receiver.script.append(Answer(204, delay_s=30))  # the first request hangs
    script = (
        "import sys\n"
        "from ingest_core.adapters.postgres.common import open_pool\n"
        "from ingest_core.adapters.postgres.webhooks import PostgresWebhooks\n"
        "from ingest_core.webhooks import DispatchConfig, Dispatcher, SecretBox\n"
        "pool = open_pool(sys.argv[1], timeout_s=10)\n"
        "config = DispatchConfig(allow_private=True, timeout_s=60)\n"
        "Dispatcher(PostgresWebhooks(pool), SecretBox('test key'), config,"
        " lookup=lambda h: []).run_once()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, pg_url])
    try:
        deadline = time.monotonic() + 20
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.requests, "the child never sent"
    finally:
        child.kill()  # SIGKILL, mid-send
        child.wait(10)
    assert world.delivery().status is DeliveryStatus.PENDING
    assert world.dispatcher.run_once() == 0  # its lease still holds
    with world.pool.connection() as conn:  # the lease runs out
        conn.execute("UPDATE webhook_delivery SET locked_until = now() - interval '1s'")
    assert world.dispatcher.run_once() == 1
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    row = world.delivery()
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)


def test_production_keeps_secrets_only_sealed(pg_url, data_dir) -> None:
    from ingest_core.bootstrap import open_app
    from ingest_core.errors import ConfigError
    from ingest_core.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=pg_url, env="production")
    with open_app(settings) as app:
        TenantAdmin(app.pool).add("acme", "Acme")
        with pytest.raises(ConfigError, match="INGEST_SECRET_KEY"):
            app.dispatcher()
        with pytest.raises(EndpointError, match="INGEST_SECRET_KEY"):
            app.endpoints().add("acme", "https://hooks.example.com/in")
    with open_app(settings.with_(secret_key="k", webhook_allow_private=True)) as app:
        assert app.dispatcher() is not None
        endpoint, _ = app.endpoints().add("acme", "http://127.0.0.1:9/in")
        assert endpoint.url.startswith("http://")


def test_the_loop_survives_a_failing_round(world, receiver, monkeypatch) -> None:
    import threading

    world.endpoints.add("acme", receiver.url)
    world.receive()
    calls = []
    real = world.store.claim_due

    def flaky(limit, lease_s):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(limit, lease_s)

    monkeypatch.setattr(world.store, "claim_due", flaky)
    config = DispatchConfig(allow_private=True, idle_s=0.01, error_wait_s=0.01)
    dispatcher = Dispatcher(world.store, SecretBox("test key"), config, lookup=no_dns)
    stop = threading.Event()
    runner = threading.Thread(target=dispatcher.run, args=(stop,))
    deadline = time.monotonic() + 10
    runner.start()
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join(5)
    assert len(calls) >= 2
    assert len(receiver.requests) == 1
