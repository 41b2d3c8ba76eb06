"""A stub authoritative DNS server and DKIM test keys, for tests that must not
depend on the machine's resolver or the internet.

    with running_stub({"example.com": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]}}) as stub:
        resolver = DnsResolver([stub.nameserver], timeout_s=0.5)
        ...
        stub.zone["example.com"]["A"] = ["192.0.2.1"]   # the zone is live
        stub.timeout_names.add("slow.example.com")       # never answered
        stub.servfail_names.add("broken.example.com")    # answered SERVFAIL
        assert stub.query_count("example.com", "TXT") == 1

Zone: ``{name: {type: [value, ...]}}``; names are case-insensitive, without the
final dot. Values by type: TXT a str or bytes (split into 255-byte strings
here) or a list of them (one record's strings), A/AAAA an address, MX a
``(preference, exchange)`` pair, CNAME/PTR a name. A name absent from the zone
is NXDOMAIN; a name present without the asked type is NODATA.

The server answers on 127.0.0.1 (or ``host``) over UDP and TCP on one free port, each in a
daemon thread; ``running_stub`` stops both on exit.

DKIM keys: ``make_dkim_key()`` gives a fresh RSA key as ``DkimKey`` (PKCS#1 PEM
for dkimpy, and the ``v=DKIM1; k=rsa; p=...`` record); ``dkim_sign`` returns the
message with a DKIM-Signature prepended.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord

Zone = dict[str, dict[str, list[object]]]
DEFAULT_TTL = 300


def _norm(name: object) -> str:
    return str(name).lower().rstrip(".")


def _txt_strings(value: object) -> list[bytes]:
    if isinstance(value, list | tuple):
        return [v if isinstance(v, bytes) else str(v).encode() for v in value]
    data = value if isinstance(value, bytes) else str(value).encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def _rdata(rtype: str, value: object) -> object:
    if rtype == "TXT":
        return TXT(_txt_strings(value))
    if rtype == "A":
        return A(str(value))
    if rtype == "AAAA":
        return AAAA(str(value))
    if rtype == "MX":
        preference, exchange = value  # type: ignore[misc]
        return MX(str(exchange), int(preference))
    if rtype == "CNAME":
        return CNAME(str(value))
    if rtype == "PTR":
        return PTR(str(value))
    raise ValueError(f"the stub does not serve {rtype} records")


@dataclass
class StubDns:
    """The running stub: its zone and failure sets may be changed at any time."""

    zone: Zone
    host: str = "127.0.0.1"
    port: int = 0
    ttl: int = DEFAULT_TTL
    timeout_names: set[str] = field(default_factory=set)
    servfail_names: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def nameserver(self) -> str:
        """``"<host>:<port>"``, as INGEST_DNS_SERVERS takes it."""
        return f"{self.host}:{self.port}"

    def query_count(self, name: str | None = None, rtype: str | None = None) -> int:
        """Queries received (over UDP and TCP), optionally for one name and type."""
        with self._lock:
            counts = Counter(self.queries)
        return sum(
            n
            for (qname, qtype), n in counts.items()
            if (name is None or qname == _norm(name)) and (rtype is None or qtype == rtype)
        )

    def answer(self, packet: bytes) -> bytes | None:
        """The reply to one query, or None to stay silent (a simulated timeout)."""
        try:
            request = DNSRecord.parse(packet)
        except Exception:
            return None
        reply = request.reply()
        qname = _norm(request.q.qname)
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        with self._lock:
            self.queries.append((qname, qtype))
        if qname in {_norm(n) for n in self.timeout_names}:
            return None
        if qname in {_norm(n) for n in self.servfail_names}:
            reply.header.rcode = RCODE.SERVFAIL
            return bytes(reply.pack())
        records = {_norm(k): v for k, v in self.zone.items()}
        name = qname
        for _ in range(8):  # follow CNAMEs within the zone
            entry = records.get(name)
            if entry is None:
                if name == qname:
                    reply.header.rcode = RCODE.NXDOMAIN
                break
            if qtype != "CNAME" and "CNAME" in entry:
                target = _norm(entry["CNAME"][0])
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=self.ttl))
                name = target
                continue
            for value in entry.get(qtype, []):
                rdata = _rdata(qtype, value)
                reply.add_answer(RR(name, getattr(QTYPE, qtype), rdata=rdata, ttl=self.ttl))
            break
        return bytes(reply.pack())


class _Udp(socketserver.ThreadingUDPServer):
    daemon_threads = True
    stub: StubDns


class _Tcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    stub: StubDns


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.stub.answer(data)  # type: ignore[attr-defined]
        if reply is not None:
            if len(reply) > 512:  # no EDNS in the stub: truncate, the client retries on TCP
                parsed = DNSRecord.parse(reply)
                parsed.rr = []
                parsed.header.tc = 1
                reply = bytes(parsed.pack())
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(5)
        try:
            while True:
                head = conn.recv(2, socket.MSG_WAITALL)
                if len(head) < 2:
                    return
                data = conn.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
                reply = self.server.stub.answer(data)  # type: ignore[attr-defined]
                if reply is None:
                    return  # simulated timeout: the client gives up on its own
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return


@contextmanager
def running_stub(
    zone: Zone | None = None, *, ttl: int = DEFAULT_TTL, host: str = "127.0.0.1", port: int = 0
) -> Iterator[StubDns]:
    """Serve ``zone`` on ``host`` (UDP and TCP, on ``port``, or one free port when
    0) until the block ends. The container stack's stub listens on its network's
    gateway address; a stub that /etc/resolv.conf can name needs port 53."""
    stub = StubDns(zone={} if zone is None else zone, ttl=ttl, host=host)
    tcp = udp = None
    for _ in range(20):  # the TCP port may be taken for UDP by someone else
        tcp = _Tcp((host, port), _TcpHandler)
        chosen = tcp.server_address[1]
        try:
            udp = _Udp((host, chosen), _UdpHandler)
            break
        except OSError:
            tcp.server_close()
    if tcp is None or udp is None:
        raise RuntimeError("no free port for the stub DNS server")
    stub.port = chosen
    threads = []
    for server in (udp, tcp):
        server.stub = stub
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield stub
    finally:
        for server in (udp, tcp):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=2)


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes  # RSA: PKCS#1 PEM; Ed25519: the base64 seed (as dkimpy signs with)
    txt: str  # the selector's record: "v=DKIM1; k=rsa; p=..."
    algorithm: bytes = b"rsa-sha256"


def make_dkim_key(bits: int = 1024) -> DkimKey:
    """A fresh RSA key. 1024 bits is dkimpy's minimum and fast to make."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())


def make_ed25519_key() -> DkimKey:
    """A fresh Ed25519 key (RFC 8463): dkimpy's base64 seed, and the
    ``v=DKIM1; k=ed25519; p=...`` record."""
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    return DkimKey(
        base64.b64encode(bytes(key)),
        "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key)).decode(),
        algorithm=b"ed25519-sha256",
    )


def dkim_sign(
    message: bytes,
    key: DkimKey,
    *,
    domain: str,
    selector: str,
    include_headers: list[bytes] | None = None,
) -> bytes:
    """``message`` with a relaxed/simple DKIM-Signature header prepended."""
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key.private_pem,
        include_headers=include_headers,
        signature_algorithm=key.algorithm,
    )
    return bytes(signature) + message
