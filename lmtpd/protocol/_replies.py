"""The fixed replies of the LMTP dialogue and their wire format.

Texts are fixed on purpose: nothing the peer sent is ever echoed back.
Enhanced status codes follow RFC 3463; RFC 2034 leaves them out of the
greeting, the LHLO reply and the intermediate 354.
"""

from __future__ import annotations

import re
from typing import Final

from lmtpd.protocol._reply import Reply, ReplyLike

OK: Final = Reply(250, "2.0.0", "OK")
SENDER_OK: Final = Reply(250, "2.1.0", "Sender OK")
CHUNK_OK: Final = Reply(250, "2.0.0", "Chunk received")
START_DATA: Final = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
BYE: Final = Reply(221, "2.0.0", "Bye")
HELP: Final = Reply(214, "2.0.0", "LMTP per RFC 2033; see the commands in the LHLO reply")
CANNOT_VRFY: Final = Reply(
    252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
)

UNKNOWN_COMMAND: Final = Reply(500, "5.5.1", "Command unrecognized")
USE_LHLO: Final = Reply(500, "5.5.1", "This is LMTP: use LHLO")
NOT_IMPLEMENTED: Final = Reply(502, "5.5.1", "Command not implemented")
BARE_NEWLINE: Final = Reply(500, "5.5.2", "Command lines must end with CRLF")
LINE_TOO_LONG: Final = Reply(500, "5.5.2", "Command line too long")
BAD_ENCODING: Final = Reply(500, "5.5.2", "Command line is not valid UTF-8")
BAD_SYNTAX: Final = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_MAIL_PARAM: Final = Reply(555, "5.5.4", "Unsupported MAIL parameter")
BAD_RCPT_PARAM: Final = Reply(555, "5.5.4", "Unsupported RCPT parameter")
BAD_SENDER: Final = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT: Final = Reply(501, "5.1.3", "Bad recipient address syntax")
NEEDS_SMTPUTF8: Final = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
TOO_BIG: Final = Reply(552, "5.3.4", "Message size exceeds fixed limit")
TOO_MANY_RECIPIENTS: Final = Reply(452, "4.5.3", "Too many recipients")

NEED_LHLO: Final = Reply(503, "5.5.1", "Send LHLO first")
NEED_MAIL: Final = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT: Final = Reply(503, "5.5.1", "Need RCPT command")
NESTED_MAIL: Final = Reply(503, "5.5.1", "Sender already specified")
BAD_SEQUENCE: Final = Reply(503, "5.5.1", "Bad sequence of commands")
NO_VALID_RECIPIENTS: Final = Reply(554, "5.5.1", "No valid recipients")
# A BDAT whose chunk size cannot be read leaves the byte stream unframed: the
# only safe continuation is to close (RFC 5321 §3.8 allows 421 to any command).
BDAT_UNFRAMED: Final = Reply(421, "4.5.4", "Malformed BDAT command, closing connection")
TOO_MANY_ERRORS: Final = Reply(421, "4.7.0", "Too many errors, closing connection")

CAPABILITIES: Final = (
    "PIPELINING",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "SMTPUTF8",
    "SIZE {max_message_bytes}",
    "CHUNKING",
    "XFORWARD NAME ADDR PROTO HELO SOURCE IDENT",
)

_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


def format_reply(reply: ReplyLike) -> bytes:
    """``"{code} {enhanced} {text}\\r\\n"``; without the enhanced part when it is empty."""
    if reply.enhanced:
        return f"{reply.code} {reply.enhanced} {reply.text}\r\n".encode("ascii")
    return f"{reply.code} {reply.text}\r\n".encode("ascii")


def format_greeting(hostname: str) -> bytes:
    return f"220 {hostname} LMTP ready\r\n".encode("ascii")


def format_lhlo(hostname: str, max_message_bytes: int) -> bytes:
    """The multi-line LHLO reply (RFC 2034: no enhanced codes here)."""
    lines = [hostname] + [c.format(max_message_bytes=max_message_bytes) for c in CAPABILITIES]
    head = "".join(f"250-{line}\r\n" for line in lines[:-1])
    return f"{head}250 {lines[-1]}\r\n".encode("ascii")


def reply_problem(reply: object, classes: str) -> str | None:
    """Why an application-supplied reply cannot go on the wire, or None if it can.

    ``classes`` lists the allowed first digits of the code (e.g. ``"245"``).
    """
    # Our own Reply first: the structural check of the protocol class is slow.
    if type(reply) is not Reply and not isinstance(reply, ReplyLike):
        return "not a Reply"
    if type(reply.code) is not int or not 200 <= reply.code <= 599:
        return "reply code out of range"
    kind = str(reply.code // 100)
    if kind not in classes:
        return f"reply code class must be one of {classes}"
    if reply.enhanced and (not _ENHANCED.fullmatch(reply.enhanced) or reply.enhanced[0] != kind):
        return "enhanced status code malformed or inconsistent with the reply code"
    if not is_printable_ascii(reply.text):
        return "reply text must be printable ASCII without line breaks"
    return None


def is_printable_ascii(text: str) -> bool:
    """Only the characters from space to tilde (ASCII's printable ones)."""
    return isinstance(text, str) and text.isascii() and text.isprintable()
