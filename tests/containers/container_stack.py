"""The container stack: the images scripts/containers.sh built, on one podman network.

Topology (docs/containers.md), one podman network with DNS (netavark + aardvark-dns),
each container reachable by its service name as in compose.yaml:

    swaks ─▶ 127.0.0.1:<port> ─▶ postfix:25 ─milter─▶ ingest:8890
                                     └──LMTP──▶ ingest:24 ─▶ db:5432, redis:6379, S3
    worker ─▶ db, redis, S3; sender checks ─▶ the DNS stub
    migrate: `ingest db upgrade` + the demo tenant, once, before ingest and worker

Postgres and Redis run from the test-only services image (Debian's packages). The
two test doubles run in this process's side of the network, on its gateway
address: the suite's DNS stub (tests/dnsstub.py), which every sender check asks
(INGEST_DNS_SERVERS), and moto's S3 server. Passwords are made per run and given
at run time; no image holds one.

conftest.py runs it once for the module; ``just containers`` builds the images.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podman_cli import Container, network_gateway, pin_bridge_address, podman

from tests.dnsstub import StubDns, running_stub
from tests.procs import MotoServer, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PREFIX = "oi-stack"
NETWORK = f"{PREFIX}-net"
DOMAIN = "orders.example.com"
SENDER_DOMAIN = "customer.example"
BUCKET = "orders"
# The test stack's Postfix retries a deferred message within seconds, not after
# 300 s, and never asks DNS about its clients (nothing may ask a real resolver).
POSTFIX_SETTINGS = ";".join(
    [
        "queue_run_delay=2s",
        "minimal_backoff_time=2s",
        "maximal_backoff_time=4s",
        "lmtp_connect_timeout=2s",
        "smtpd_peername_lookup=no",
        "inet_protocols=ipv4",
        "myhostname=mx.orders.example.com",
    ]
)


@dataclass
class Stack:
    postfix: Container
    ingest: Container
    worker: Container
    migrate: Container
    smtp_port: int
    subnet: str
    dns: StubDns
    images: dict[str, str]

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of each of our containers' logs, for a failure report."""
        return "\n".join(
            f"----- {c.name}\n" + "\n".join(c.logs().splitlines()[-lines:])
            for c in (self.postfix, self.ingest, self.worker)
        )

    def ingest_cli(self, *args: str) -> object:
        """An operator command inside the running ingest container, its JSON output."""
        return self.ingest.exec_json("ingest", *args, "--json")


def _remove_leftovers() -> None:
    names = [f"{PREFIX}-{n}" for n in ("postfix", "ingest", "worker", "migrate", "db", "redis")]
    podman("rm", "--force", "--volumes", *names, check=False)
    podman("network", "rm", "--force", NETWORK, check=False)
    podman("volume", "rm", "--force", f"{PREFIX}-pg", f"{PREFIX}-redis", check=False)


def _zone(subnet: str) -> dict[str, dict[str, list[object]]]:
    # The sender's domain authorises the stack's network (and the loopback, where a
    # published port may come from), so a working sender check says spf=pass.
    return {SENDER_DOMAIN: {"TXT": [f"v=spf1 ip4:{subnet} ip4:127.0.0.0/8 -all"]}}


def _on_failure_dump(*containers: Container) -> None:
    for container in containers:
        print(f"----- logs of {container.name} (last 60 lines)")
        print("\n".join(container.logs().splitlines()[-60:]))


@contextlib.contextmanager
def running_stack(images: dict[str, str], folder: Path) -> Iterator[Stack]:
    """The stack up and healthy; on the way out every container, the network and the
    volumes are removed (with the containers' last log lines printed on a failure)."""
    _remove_leftovers()
    podman("network", "create", NETWORK)
    subnet, gateway = network_gateway(NETWORK)
    moto = MotoServer(folder / "moto.log", host=gateway)
    started: list[Container] = []
    passwords = {k: secrets.token_hex(16) for k in ("db", "redis", "secret_key")}
    try:
        # The bridge, and so the gateway address the doubles listen on, exists once
        # a first container is attached.
        _start_services(images, passwords, started)
        pin_bridge_address(NETWORK)
        with running_stub(_zone(subnet), host=gateway) as dns:
            moto.start()
            moto.create_bucket(BUCKET)
            yield _start_ingest(images, subnet, dns, moto, passwords, started)
    except BaseException:
        _on_failure_dump(*started)
        raise
    finally:
        for container in reversed(started):
            container.remove()
        moto.stop()
        _remove_leftovers()


HEALTH = ["--health-interval", "30s", "--health-retries", "3"]


def _start_services(
    images: dict[str, str], passwords: dict[str, str], started: list[Container]
) -> None:
    pg_password, redis_password = passwords["db"], passwords["redis"]
    db = Container(
        f"{PREFIX}-db",
        images["services"],
        env={"POSTGRES_USER": "ingest", "POSTGRES_PASSWORD": pg_password, "POSTGRES_DB": "ingest"},
        options=[
            "--volume",
            f"{PREFIX}-pg:/var/lib/postgresql/data",
            "--health-cmd",
            "pg_isready -h 127.0.0.1 -U ingest -d ingest",
            *HEALTH,
        ],
        aliases=["db"],
    )
    redis = Container(
        f"{PREFIX}-redis",
        images["services"],
        command=[
            "redis-server",
            "--bind",
            "0.0.0.0",
            "--requirepass",
            redis_password,
            "--appendonly",
            "yes",
            "--dir",
            "/var/lib/redis",
        ],
        options=[
            "--user",
            "redis",
            "--volume",
            f"{PREFIX}-redis:/var/lib/redis",
            "--health-cmd",
            f"redis-cli --no-auth-warning -a {redis_password} ping",
            *HEALTH,
        ],
        aliases=["redis"],
    )
    for container in (db, redis):
        container.run(NETWORK)
        started.append(container)
    for container in (db, redis):
        container.wait_healthy()


def _start_ingest(
    images: dict[str, str],
    subnet: str,
    dns: StubDns,
    moto: MotoServer,
    passwords: dict[str, str],
    started: list[Container],
) -> Stack:
    pg_password, redis_password = passwords["db"], passwords["redis"]
    env = {
        "INGEST_DATABASE_URL": f"postgresql://ingest:{pg_password}@db:5432/ingest",
        "INGEST_QUEUE_URL": f"redis://:{redis_password}@redis:6379/0",
        "INGEST_OBJECT_STORE_URL": f"s3://{BUCKET}",
        **moto.aws_env(),
        "INGEST_DOMAINS": DOMAIN,
        # The stack's network, and the loopback for `ingest healthcheck`.
        "INGEST_LMTP_ALLOW_FROM": f"127.0.0.0/8,{subnet}",
        "INGEST_MILTER_ALLOW_FROM": subnet,
        "INGEST_DNS_SERVERS": dns.nameserver,
        "INGEST_DNS_TIMEOUT_S": "2",
        "INGEST_SHUTDOWN_GRACE_S": "5",
        # RECEIVED rows whose job was lost (a kill after the 250) are swept after
        # 5 s, not 10 minutes.
        "INGEST_SWEEP_AGE_S": "5",
        "INGEST_SECRET_KEY": passwords["secret_key"],
    }
    # As compose.yaml runs it: read-only root, a private /tmp, port 24 unprivileged.
    hardened = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    migrate = Container(
        f"{PREFIX}-migrate",
        images["ingest"],
        command=[
            "sh",
            "-c",
            "ingest db upgrade && ingest tenants add acme --name 'Acme Corp (demo)' --if-missing",
        ],
        env=env,
        options=hardened,
    )
    migrate.run(NETWORK)
    started.append(migrate)
    assert migrate.exit_code() == 0, migrate.logs()

    ingest = Container(
        f"{PREFIX}-ingest",
        images["ingest"],
        command=["ingest", "serve"],
        env=env,
        options=[*hardened, "--sysctl", "net.ipv4.ip_unprivileged_port_start=0"],
        aliases=["ingest"],
    )
    worker = Container(
        f"{PREFIX}-worker",
        images["ingest"],
        command=["ingest", "worker", "-w", "2"],
        env=env,
        options=[*hardened, "--health-cmd", "ingest config", *HEALTH],
    )
    for container in (ingest, worker):
        container.run(NETWORK)
        started.append(container)
    ingest.wait_healthy()
    worker.wait_healthy()

    smtp_port = free_port()
    postfix = Container(
        f"{PREFIX}-postfix",
        images["postfix"],
        env={"POSTFIX_SETTINGS": POSTFIX_SETTINGS},
        options=["--publish", f"127.0.0.1:{smtp_port}:25"],
        aliases=["postfix"],
    )
    postfix.run(NETWORK)
    started.append(postfix)
    postfix.wait_healthy()
    return Stack(postfix, ingest, worker, migrate, smtp_port, subnet, dns, images)
