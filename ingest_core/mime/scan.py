"""The MIME parser with its limits: the stdlib parser counts what it builds.

The stdlib's ``BytesFeedParser`` builds one object per part and recurses once
per nesting level, so 100,000 parts or 1,000 levels cost seconds or end in a
``RecursionError`` before any check on the finished tree could run. The limits
are therefore charged *while* it parses, by the parser itself: every part it
creates goes through the policy's ``message_factory`` (a ``BudgetedMessage``,
which charges one part) and is hung below its parent with ``attach`` (which
charges its nesting level). A second reader that guesses what the parser will
make of folding, case, quoting, repeated or RFC 2231 parameters can disagree
with it, and each disagreement is a way past the limits; here there is no
second reader, so the counts are exactly what the parser built.

Inner messages we parse again (a transfer-encoded ``message/rfc822``, a
multipart whose boundary had to be recovered) are parsed with the same
``PartBudget``, starting at the level of the part that held them: an encoded
message is charged to the outer message's part and depth budget.

The policy also refuses a ``Content-Type`` or ``Content-Disposition`` field
longer than ``MAX_STRUCTURE_FIELD`` (the header registry parses both for every
part), and the feeding loop counts lines (the parser keeps each body line as
its own string, so a flood of short lines is what exhausts it).
"""

from __future__ import annotations

from email.message import EmailMessage, Message
from email.parser import BytesFeedParser
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

from ingest_core.mime.errors import MalformedMessage, ManifestError, ManifestLimitExceeded

if TYPE_CHECKING:
    from email.policy import Policy
    from typing import BinaryIO

MAX_STRUCTURE_FIELD = 65_536
ENCODED_MESSAGE = frozenset({"base64", "quoted-printable"})
_STRUCTURE_FIELDS = frozenset({"content-type", "content-disposition"})


class PartBudget:
    """Parts, nesting and lines one message may hold, the inner messages
    parsed from it included."""

    def __init__(self, *, max_parts: int, max_depth: int, max_lines: int | None = None) -> None:
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.max_lines = max_lines
        self.parts = 0
        self.depth = 0
        self.lines = 0

    def add_part(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise ManifestLimitExceeded(f"too many MIME parts: more than {self.max_parts}")

    def give_back_part(self) -> None:
        """A part parsed again replaces the one the first parse built."""
        self.parts -= 1

    def reach(self, level: int) -> None:
        self.depth = max(self.depth, level)
        if level > self.max_depth:
            raise ManifestLimitExceeded(f"MIME nesting too deep: more than {self.max_depth} levels")

    def add_lines(self, data: bytes) -> None:
        # CR, LF and CRLF each end a line, as for the parser; a CRLF split
        # between two chunks counts twice, which errs on the safe side.
        self.lines += data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
        if self.max_lines is not None and self.lines > self.max_lines:
            raise ManifestLimitExceeded(f"too many lines: more than {self.max_lines}")


class BudgetedMessage(EmailMessage):
    """A part the parser builds: it charges its budget for itself and, once
    attached below a parent, for its nesting level."""

    def __init__(self, policy: Policy | None = None, *, budget: PartBudget, level: int) -> None:
        super().__init__(policy)
        budget.add_part()
        self.budget = budget
        self.level = level
        self.linesep = "\n"  # set on the root: the line end the sender used

    def get_content_maintype(self) -> str:
        """``message`` for a message part only when it is not transfer-encoded:
        RFC 2046 allows no encoding there, and the parser would read base64 or
        quoted-printable text as a message. So the parser keeps such a part as
        a leaf, its encoded text exactly as sent, to be decoded and parsed again
        (``walk``); ``get_content_type()`` still says what the sender declared."""
        maintype = super().get_content_maintype()
        if maintype == "message" and _transfer_encoded(self):
            return "application"
        return maintype

    def attach(self, payload: Any) -> None:
        if isinstance(payload, BudgetedMessage):
            payload.level = self.level + 1
            self.budget.reach(payload.level)
        super().attach(payload)


def _transfer_encoded(part: Message) -> bool:
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    return encoding in ENCODED_MESSAGE


class _LimitedPolicy(EmailPolicy):
    """``policy.default``, refusing oversized structure fields before the
    header registry parses them."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        if len(value) > MAX_STRUCTURE_FIELD and name.lower() in _STRUCTURE_FIELDS:
            raise ManifestLimitExceeded(f"{name} header longer than {MAX_STRUCTURE_FIELD} bytes")
        return name, value


def budgeted_policy(budget: PartBudget, level: int = 0) -> EmailPolicy:
    """The parse policy whose parts charge ``budget``, the root at ``level``."""

    def factory(policy: Policy) -> BudgetedMessage:
        return BudgetedMessage(policy, budget=budget, level=level)

    return _LimitedPolicy(message_factory=factory)


def parse_stream(
    source: BinaryIO, budget: PartBudget, *, level: int = 0, chunk_size: int
) -> tuple[BudgetedMessage, int]:
    """Parse ``source`` within ``budget``; (message, bytes fed).

    Raises ManifestLimitExceeded (also for the parser's own RecursionError) or
    MalformedMessage.
    """
    parser = BytesFeedParser(policy=budgeted_policy(budget, level))
    fed = 0
    linesep = None
    try:
        while data := source.read(chunk_size):
            if linesep is None:
                linesep = _first_line_end(data)
            fed += len(data)
            budget.add_lines(data)
            parser.feed(data)
        message = parser.close()
    except RecursionError as exc:
        raise ManifestLimitExceeded("MIME nesting too deep for the parser") from exc
    except ManifestError:
        raise
    except Exception as exc:  # the stdlib parser is meant not to raise; be sure
        raise MalformedMessage(f"MIME parser failed ({type(exc).__name__})") from exc
    if not isinstance(message, BudgetedMessage):
        raise MalformedMessage("MIME parser returned no message")
    budget.reach(level)
    message.linesep = linesep or "\n"
    return message, fed


def _first_line_end(data: bytes) -> str | None:
    end = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
    if end < 0 or (data[end : end + 1] == b"\r" and end + 1 == len(data)):
        return None  # not known yet (or a CR that may be half of a CRLF)
    if data[end : end + 2] == b"\r\n":
        return "\r\n"
    return "\r" if data[end : end + 1] == b"\r" else "\n"


def budget_of(message: Message) -> PartBudget | None:
    """The budget a parsed message charges (None for a tree built in memory)."""
    return message.budget if isinstance(message, BudgetedMessage) else None
