"""A thin podman client for the container stack: run, exec, kill, logs, health.

Every call is a ``podman`` command line with a deadline; a failure raises
``PodmanError`` with the command and its stderr. The engine settings this machine
needs (runc, cgroupfs, no default ulimits) come from the containers.conf that
``CONTAINERS_CONF`` names (scripts/containers.sh writes it).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


class PodmanError(RuntimeError):
    pass


def podman(
    *args: str, timeout_s: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = ["podman", *args]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PodmanError(f"{' '.join(argv)}: no answer within {timeout_s} s") from exc
    if check and result.returncode != 0:
        raise PodmanError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def wait_until(
    ready: Callable[[], bool], what: str, limit_s: float, *, every_s: float = 0.5
) -> None:
    """Poll ``ready()``; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        time.sleep(every_s)


@dataclass
class Container:
    """One container of the stack, created by ``run`` and removed by the stack."""

    name: str
    image: str
    command: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    options: Sequence[str] = ()
    aliases: Sequence[str] = ()  # names on the network, as compose gives its services

    def run(self, network: str, *, detach: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["run", "--name", self.name, "--network", network]
        for alias in self.aliases:
            argv += ["--network-alias", alias]
        for key, value in self.env.items():
            argv += ["--env", f"{key}={value}"]
        argv += [*self.options]
        argv += ["--detach"] if detach else []
        return podman(*argv, self.image, *self.command, timeout_s=300)

    def exec(self, *command: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, timeout_s=timeout_s, check=False)

    def exec_json(self, *command: str) -> object:
        result = self.exec(*command)
        if result.returncode != 0:
            raise PodmanError(f"{self.name}: {' '.join(command)}: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def healthy(self) -> bool:
        """Runs the container's health check once (podman has no timer for it here:
        no systemd), as Docker's would."""
        return podman("healthcheck", "run", self.name, check=False).returncode == 0

    def wait_healthy(self, limit_s: float = 90) -> None:
        def ready() -> bool:
            if self.healthy():
                return True
            if self.state()["Status"] != "running":
                raise AssertionError(f"{self.name} stopped: {self.logs()[-3000:]}")
            return False

        wait_until(ready, f"{self.name} to be healthy", limit_s)

    def state(self) -> dict[str, object]:
        found = json.loads(podman("inspect", "--type", "container", self.name).stdout)
        return dict(found[0]["State"])

    def exit_code(self, limit_s: float = 120) -> int:
        """Waits for the container to stop; its exit code."""
        return int(podman("wait", self.name, timeout_s=limit_s).stdout.strip() or "-1")

    def kill(self) -> None:
        podman("kill", "--signal", "KILL", self.name)

    def start(self) -> None:
        podman("start", self.name)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", self.name, check=False)


def network_gateway(network: str) -> tuple[str, str]:
    """``(subnet, gateway)`` of a podman network."""
    subnet = _inspect(network)["subnets"][0]
    return str(subnet["subnet"]), str(subnet["gateway"])


def pin_bridge_address(network: str) -> str:
    """Give the network's bridge a MAC address of its own, derived from its
    gateway address; returns it.

    A Linux bridge without one takes the lowest MAC of its ports, so a container
    that leaves and joins again (the kill scenario's ingest) can change the
    gateway's MAC under the others: their ARP entries go stale and, for half a
    minute or so, nothing they send to the gateway arrives (the test doubles
    listen there; in a deployment, all traffic leaving the network passes it).
    An address set by hand stays. Needs root and an existing bridge (one
    container attached)."""
    found = _inspect(network)
    bridge = str(found["network_interface"])
    octets = [int(part) for part in str(found["subnets"][0]["gateway"]).split(".")]
    address = "02:00:" + ":".join(f"{octet:02x}" for octet in octets)
    result = subprocess.run(
        ["ip", "link", "set", "dev", bridge, "address", address],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise PodmanError(f"ip link set dev {bridge} address {address}: {result.stderr.strip()}")
    return address


def bridge_address(network: str) -> str:
    """The MAC address of the network's bridge (the gateway's, to the containers)."""
    bridge = str(_inspect(network)["network_interface"])
    return Path(f"/sys/class/net/{bridge}/address").read_text().strip()


def _inspect(network: str) -> Any:
    """What ``podman network inspect`` says of one network."""
    return json.loads(podman("network", "inspect", network).stdout)[0]
