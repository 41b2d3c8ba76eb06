"""The header summary recorded with each message."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest_core.headers import normalise_message_id, read_head, summarise


def test_folded_encoded_subject_and_from() -> None:
    head = (
        b"Received: x\r\nSubject: =?utf-8?q?Bestellung_=C3=BCber?=\r\n 5 Paletten\r\n"
        b"From: =?iso-8859-1?q?K=E4ufer?= <k@example.org>\r\nMessage-ID:\r\n <a.b@c>\r\n\r\n"
    )
    summary = summarise(head)
    assert summary.subject == "Bestellung über 5 Paletten"
    assert summary.from_header == "Käufer <k@example.org>"
    assert summary.message_id == "a.b@c"


def test_body_lines_are_not_headers() -> None:
    summary = summarise(b"X-A: 1\r\n\r\nSubject: not a header\r\n")
    assert summary.subject is None


def test_a_folded_line_of_another_field_is_never_a_field_of_its_own() -> None:
    """A continuation line is part of the field it continues, whatever it says:
    `` Message-ID: <forged@x>`` folded under X-Note must not become the id that
    deduplicates the message, nor `` From:`` its sender."""
    summary = summarise(
        b"X-Note: a\r\n Message-ID: <forged@x>\r\n From: Forged <f@x>\r\n"
        b"From: Real <r@example.org>\r\nMessage-ID: <real@example.org>\r\n\r\n"
    )
    assert summary.message_id == "real@example.org"
    assert summary.from_header == "Real <r@example.org>"


@pytest.mark.parametrize(
    "head",
    [
        b"Subject: x\r\n\r\n",  # absent
        b"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n",  # two of them
        b"Message-ID: <no-at-sign>\r\n\r\n",
        b"Message-ID: <a@b\r\n\x00>\r\n\r\n",
    ],
)
def test_untrustworthy_message_ids_are_none(head: bytes) -> None:
    assert summarise(head).message_id is None


def test_control_and_bidi_characters_are_removed() -> None:
    summary = summarise("Subject: PO\u202e1\x07 x\r\n\r\n".encode())
    assert summary.subject == "PO1 x"


def test_read_head_stops_at_the_blank_line_and_the_limit() -> None:
    import io

    assert read_head(io.BytesIO(b"A: 1\r\n\r\nbody")) == b"A: 1\r\n"
    assert len(read_head(io.BytesIO(b"A: " + b"x" * 1000), limit=100)) == 100


@given(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="=?"),
        min_size=1,
        max_size=60,
    )
)
def test_plain_subjects_match_the_email_package(subject: str) -> None:
    head = f"From: a@b.example\r\nSubject: {subject}\r\n\r\n".encode()
    expected = BytesParser(policy=policy.default).parsebytes(head, headersonly=True)["subject"]
    assert summarise(head).subject == (" ".join(str(expected).split()) or None)


def test_normalise_message_id() -> None:
    assert normalise_message_id("  <x@y>  ") == "x@y"
    assert normalise_message_id(None) is None
