"""Sender text made safe for its three destinations."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest_core.text import displayable, smtp_safe, storable


def test_storable_replaces_what_postgres_text_cannot_hold():
    assert storable("a\x00b") == "a\ufffdb"
    assert storable("caf\udce9") == "caf\ufffd"
    assert storable(None) is None


def test_displayable_is_one_line_without_controls_or_bidi():
    assert displayable("Re:\r\n Order\t 12\x1b[31m", 100) == "Re: Order 12[31m"
    assert displayable("invoice\u202egpj.exe", 100) == "invoicegpj.exe"
    assert displayable("a\u2028b\x85c\x7f d", 100) == "a b c d"
    assert displayable("x" * 50, 10) == "x" * 10


def test_smtp_safe_is_printable_ascii_without_percent():
    assert smtp_safe("No such mailbox for 100%\r\nüser") == "No such mailbox for 100    ser"
    assert smtp_safe("\x00\x01") is None


@given(st.text())
def test_displayable_output_never_breaks_a_line(text):
    shown = displayable(text, 1000)
    assert not any(ch in shown for ch in "\r\n\x85\u2028\u2029\x1b")
    assert shown == shown.strip()


@given(st.text())
def test_smtp_safe_output_is_printable_ascii(text):
    safe = smtp_safe(text)
    assert safe is None or all(" " <= ch <= "~" and ch != "%" for ch in safe)
