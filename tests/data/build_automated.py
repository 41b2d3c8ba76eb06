"""Builds the automated-mail corpus: ``automated/*.eml`` and ``automated/expected.json``.

Real-looking automated mail of each kind in several vendors' formats, and
ordinary orders that must not be held. Each case states the envelope sender it
is delivered with and what it must be classified as; the bounce fields are the
very values written into the message. The expectations are written here, by
hand and from the templates, never by the classifier under test.

Run ``python tests/data/build_automated.py`` after changing a case; a test
checks that the committed files match what this script builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "automated"
EXPECTED = OUT / "expected.json"

# The documented default policy (docs/automated-mail.md), restated here.
HELD_BY_DEFAULT = {"auto-reply", "bounce", "feedback-report", "list"}

ORDER = (
    "To: orders+acme@orders.example.com\nDate: Tue, 25 Nov 2025 10:00:00 +0100\nMIME-Version: 1.0\n"
)
PDF = b"%PDF-1.4\n" + hashlib.sha256(b"order").digest() * 8 + b"\n%%EOF\n"
PDF_B64 = base64.b64encode(PDF).decode()

# A reason quotes at most this many characters of the deciding field's value.
QUOTED = 60
GROUP_POST = (
    "<https://groups.google.example/a/customer.example/group/buyers/post>,"
    " <mailto:buyers@customer.example>"
)

CASES: dict[str, dict] = {}


def case(
    name: str,
    text: str,
    *,
    envelope_from: str,
    kind: str | None,
    reason: str | None,
    bounce: dict | None = None,
    ordinary: bool = False,
) -> None:
    CASES[name] = {
        "text": text,
        "expected": {
            "envelope_from": envelope_from,
            "kind": kind,
            "reason": reason,
            "bounce": bounce,
            "ordinary": ordinary,
            "status": "QUARANTINED" if kind in HELD_BY_DEFAULT else "PROCESSED",
        },
    }


def dsn(
    *,
    boundary: str,
    subject: str,
    from_: str,
    explanation: str,
    mta: str,
    recipient: str,
    action: str,
    status: str,
    diagnostic: str,
    original: bool = True,
    extra_head: str = "",
) -> str:
    """An RFC 3464 bounce: explanation, delivery-status, the returned headers."""
    original_line = f"Original-Recipient: rfc822;{recipient}\n" if original else ""
    return (
        f"From: {from_}\nTo: orders+acme@orders.example.com\nSubject: {subject}\n"
        f"Date: Tue, 25 Nov 2025 10:05:00 +0100\nMessage-ID: <{boundary}@{mta}>\n"
        f"{extra_head}MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n boundary="{boundary}"\n\n'
        f"This is a MIME-encapsulated message.\n\n--{boundary}\n"
        f"Content-Type: text/plain; charset=us-ascii\n\n{explanation}\n\n--{boundary}\n"
        f"Content-Type: message/delivery-status\n\nReporting-MTA: dns; {mta}\n"
        f"Arrival-Date: Tue, 25 Nov 2025 10:04:58 +0100\n\n"
        f"Final-Recipient: rfc822; {recipient}\n{original_line}Action: {action}\n"
        f"Status: {status}\nDiagnostic-Code: smtp; {diagnostic}\n\n--{boundary}\n"
        f"Content-Type: text/rfc822-headers\n\nFrom: orders+acme@orders.example.com\n"
        f"To: {recipient}\nSubject: Re: PO 4711\n\n--{boundary}--\n"
    )


def build() -> None:
    # ---------------------------------------------------------------- auto-replies
    case(
        "exchange_oof",
        "From: Anna Berger <anna.berger@customer.example>\n"
        + ORDER
        + "Subject: Automatic reply: PO 4711\nMessage-ID: <oof1@customer.example>\n"
        "Auto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\n"
        "X-MS-Exchange-Inbox-Rules-Loop: anna.berger@customer.example\n"
        "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\n"
        "Thread-Topic: PO 4711\nContent-Type: text/plain; charset=utf-8\n\n"
        "I am out of the office until 1 December with limited access to e-mail.\n",
        envelope_from="",
        kind="auto-reply",
        reason="Auto-Submitted: auto-generated",
    )
    case(
        "exchange_oof_without_auto_submitted",
        "From: Jan de Vries <jan@klant.example>\n"
        + ORDER
        + "Subject: Automatisch antwoord: Bestelling 19\nMessage-ID: <oof2@klant.example>\n"
        "X-MS-Exchange-Inbox-Rules-Loop: jan@klant.example\n"
        "Content-Type: text/plain; charset=utf-8\n\nIk ben afwezig tot maandag.\n",
        envelope_from="jan@klant.example",
        kind="auto-reply",
        reason="X-MS-Exchange-Inbox-Rules-Loop: jan@klant.example",
    )
    case(
        "gmail_vacation",
        "From: Marco Rossi <marco.rossi@gmail.example>\n"
        + ORDER
        + "Subject: Re: Ordine 2025/118\nMessage-ID: <vac1@mail.gmail.example>\n"
        "Auto-Submitted: auto-replied\nContent-Type: text/plain; charset=UTF-8\n\n"
        "Sono in ferie fino al 3 dicembre.\n",
        envelope_from="marco.rossi@gmail.example",
        kind="auto-reply",
        reason="Auto-Submitted: auto-replied",
    )
    case(
        "hoster_x_autoreply",
        "From: Einkauf <einkauf@kunde.example>\n"
        + ORDER
        + "Subject: Abwesenheitsnotiz: Bestellung 55\nMessage-ID: <ar1@kunde.example>\n"
        "X-Autoreply: yes\nContent-Type: text/plain; charset=utf-8\n\n"
        "Vielen Dank, ich bin ab dem 2. Dezember wieder im Büro.\n",
        envelope_from="einkauf@kunde.example",
        kind="auto-reply",
        reason="X-Autoreply: yes",
    )
    case(
        "helpdesk_ticket_received",
        "From: Support <support@vendor.example>\n"
        + ORDER
        + "Subject: [Ticket #88213] We received your request\n"
        "Message-ID: <t88213@helpdesk.vendor.example>\nX-Autorespond: 1\nPrecedence: bulk\n"
        "Content-Type: text/plain; charset=utf-8\n\nYour ticket was received.\n",
        envelope_from="support@vendor.example",
        kind="auto-reply",
        reason="X-Autorespond: 1",
    )
    case(
        "unix_vacation",
        "From: pat@customer.example\n"
        + ORDER
        + "Subject: On vacation: Re: PO 4712\nMessage-ID: <vac2@customer.example>\n"
        "Precedence: bulk\nContent-Type: text/plain\n\nI am away until Monday.\n",
        envelope_from="pat@customer.example",
        kind="auto-reply",
        reason="Precedence: bulk, auto-reply subject",
    )
    case(
        "firstclass_machine_generated",
        "From: Lager <lager@firma.example>\n"
        + ORDER
        + "Subject: Re: Bestellung 71\nMessage-ID: <fc1@firma.example>\n"
        "X-FC-MachineGenerated: true\nContent-Type: text/plain\n\nAbwesend.\n",
        envelope_from="lager@firma.example",
        kind="auto-reply",
        reason="X-FC-MachineGenerated: true",
    )
    case(
        "read_receipt",
        "From: buyer@customer.example\n"
        + ORDER.replace("MIME-Version: 1.0\n", "")
        + "Subject: Read: PO 4711\nMessage-ID: <mdn1@customer.example>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=disposition-notification;\n boundary="mdn"\n\n'
        "--mdn\nContent-Type: text/plain\n\nYour message was read.\n--mdn\n"
        "Content-Type: message/disposition-notification\n\n"
        "Final-Recipient: rfc822; buyer@customer.example\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n--mdn--\n",
        envelope_from="",
        kind="auto-reply",
        reason="multipart/report with a disposition notification",
    )
    case(
        "null_sender_notice",
        "From: Scanner <scanner@customer.example>\n"
        + ORDER
        + "Subject: Your message was scanned\nMessage-ID: <scan1@customer.example>\n"
        "Content-Type: text/plain\n\nNo threats found.\n",
        envelope_from="",
        kind="auto-reply",
        reason="null envelope sender",
    )
    # --------------------------------------------------------------------- bounces
    recipient, status, diagnostic = (
        "nobody@customer.example",
        "5.1.1",
        "550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown",
    )
    case(
        "postfix_bounce",
        dsn(
            boundary="8A1B2C3D4E.1764061500/mx.orders.example.com",
            subject="Undelivered Mail Returned to Sender",
            from_="MAILER-DAEMON@mx.orders.example.com (Mail Delivery System)",
            explanation="This is the mail system at host mx.orders.example.com.\n\n"
            "I'm sorry to have to inform you that your message could not\nbe delivered.",
            mta="mx.orders.example.com",
            recipient=recipient,
            action="failed",
            status=status,
            diagnostic=diagnostic,
            extra_head="Auto-Submitted: auto-replied\n",
        ),
        envelope_from="",
        kind="bounce",
        reason="multipart/report with a delivery-status part",
        bounce={
            "original_recipient": recipient,
            "action": "failed",
            "status": status,
            "diagnostic": diagnostic,
        },
    )
    exchange_diag = (
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    )
    case(
        "exchange_online_ndr",
        dsn(
            boundary="b1_ndr_exchange",
            subject="Undeliverable: PO 4711",
            from_="Microsoft Outlook "
            "<MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@customer.example>",
            explanation="Your message to einkauf@customer.example couldn't be delivered.",
            mta="AM6PR01MB1234.eurprd01.prod.exchangelabs.example",
            recipient="einkauf@customer.example",
            action="failed",
            status="5.1.10",
            diagnostic=exchange_diag,
            original=False,
            extra_head="X-MS-Exchange-Message-Is-Ndr:\nAuto-Submitted: auto-replied\n",
        ),
        envelope_from="",
        kind="bounce",
        reason="multipart/report with a delivery-status part",
        bounce={
            "original_recipient": "einkauf@customer.example",
            "action": "failed",
            "status": "5.1.10",
            "diagnostic": exchange_diag,
        },
    )
    case(
        "sendmail_bounce",
        dsn(
            boundary="5APA0qZ1001234.1764061501/relay.customer.example",
            subject="Returned mail: see transcript for details",
            from_="Mail Delivery Subsystem <MAILER-DAEMON@relay.customer.example>",
            explanation="The original message was received at Tue, 25 Nov 2025 10:00:01\n"
            "   ----- The following addresses had permanent fatal errors -----\n"
            "<full@customer.example>",
            mta="relay.customer.example",
            recipient="full@customer.example",
            action="failed",
            status="5.2.2",
            diagnostic="552 5.2.2 Mailbox full",
        ),
        envelope_from="",
        kind="bounce",
        reason="multipart/report with a delivery-status part",
        bounce={
            "original_recipient": "full@customer.example",
            "action": "failed",
            "status": "5.2.2",
            "diagnostic": "552 5.2.2 Mailbox full",
        },
    )
    gmail_diag = "421-4.4.7 The recipient server did not accept our requests to connect."
    case(
        "gmail_delayed",
        dsn(
            boundary="000000000000ab12cd34",
            subject="Delivery Status Notification (Delay)",
            from_="Mail Delivery Subsystem <mailer-daemon@googlemail.example>",
            explanation="There was a temporary problem delivering your message.",
            mta="mx.google.example",
            recipient="slow@customer.example",
            action="delayed",
            status="4.4.7",
            diagnostic=gmail_diag + "\n  Learn more at https://support.google.example",
            original=False,
        ),
        envelope_from="",
        kind="bounce",
        reason="multipart/report with a delivery-status part",
        bounce={
            "original_recipient": "slow@customer.example",
            "action": "delayed",
            "status": "4.4.7",
            "diagnostic": gmail_diag + " Learn more at https://support.google.example",
        },
    )
    case(
        "exim_bounce",
        "From: Mail Delivery System <Mailer-Daemon@mx.customer.example>\n"
        "To: orders+acme@orders.example.com\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "Date: Tue, 25 Nov 2025 10:05:00 +0100\nMessage-ID: <E1vExim-0001@mx.customer.example>\n"
        "X-Failed-Recipients: gone@customer.example\nAuto-Submitted: auto-replied\n"
        "Content-Type: text/plain; charset=us-ascii\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  gone@customer.example\n    host mx.customer.example [192.0.2.7]\n"
        "    SMTP error from remote mail server after RCPT TO:<gone@customer.example>:\n"
        "    550 No such user\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        "Subject: Re: PO 4711\n",
        envelope_from="",
        kind="bounce",
        reason="X-Failed-Recipients",
        bounce={
            "original_recipient": "gone@customer.example",
            "action": "failed",
            "status": None,
            "diagnostic": None,
        },
    )
    case(
        "qmail_bounce",
        "From: MAILER-DAEMON@mail.customer.example\nTo: orders+acme@orders.example.com\n"
        "Subject: failure notice\nDate: Tue, 25 Nov 2025 10:05:00 +0100\n"
        "Message-ID: <qmail1@mail.customer.example>\n\n"
        "Hi. This is the qmail-send program at mail.customer.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<left@customer.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        "--- Below this line is a copy of the message.\n\nSubject: Re: PO 4711\n",
        envelope_from="",
        kind="bounce",
        reason="null envelope sender, From a mailer daemon",
        bounce={
            "original_recipient": "left@customer.example",
            "action": "failed",
            "status": None,
            "diagnostic": None,
        },
    )
    # ------------------------------------------------------------ feedback report
    case(
        "arf_feedback_report",
        "From: Feedback Loop <fbl@mail.provider.example>\nTo: orders+acme@orders.example.com\n"
        "Subject: FW: Re: PO 4711\nDate: Tue, 25 Nov 2025 11:00:00 +0000\n"
        "Message-ID: <arf1@mail.provider.example>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report;\n boundary="arf"\n\n'
        "--arf\nContent-Type: text/plain\n\nThis is an email abuse report.\n--arf\n"
        "Content-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: FBL/1.0\n"
        "Version: 1\nOriginal-Mail-From: <orders+acme@orders.example.com>\n"
        "Arrival-Date: Tue, 25 Nov 2025 10:59:00 +0000\nSource-IP: 192.0.2.25\n--arf\n"
        "Content-Type: message/rfc822\n\nFrom: orders+acme@orders.example.com\n"
        "Subject: Re: PO 4711\n\nthanks\n--arf--\n",
        envelope_from="fbl-bounces@mail.provider.example",
        kind="feedback-report",
        reason="multipart/report with a feedback-report part",
    )
    # ------------------------------------------------------------ list and bulk
    case(
        "mailman_list",
        "From: Eva Novak <eva@member.example>\n"
        + ORDER
        + "Subject: [purchasing-talk] Who orders the Q1 screws?\n"
        "Message-ID: <list1@member.example>\n"
        "List-Id: Purchasing talk <purchasing-talk.lists.example.org>\n"
        "List-Post: <mailto:purchasing-talk@lists.example.org>\n"
        "List-Unsubscribe: <https://lists.example.org/mailman/options/purchasing-talk>\n"
        "Precedence: list\nX-Mailman-Version: 2.1.39\nContent-Type: text/plain\n\nAnyone?\n",
        envelope_from="purchasing-talk-bounces@lists.example.org",
        kind="list",
        reason="List-Id: Purchasing talk <purchasing-talk.lists.example.org>",
    )
    case(
        "google_groups",
        "From: Tom Lee <tom@customer.example>\n"
        + ORDER
        + "Subject: Re: new supplier portal\nMessage-ID: <gg1@customer.example>\n"
        "Mailing-list: list buyers@customer.example; contact buyers+owners@customer.example\n"
        f"List-Post: {GROUP_POST}\n"
        "Precedence: list\nContent-Type: text/plain\n\nSee the thread.\n",
        envelope_from="buyers+bncBDX@customer.example",
        kind="list",
        reason=f"List-Post: {GROUP_POST[:QUOTED]}",
    )
    case(
        "newsletter",
        "From: Industrial Supply News <news@supply-news.example>\n"
        + ORDER
        + "Subject: November deals on fasteners\nMessage-ID: <nl1@mta.supply-news.example>\n"
        "List-Unsubscribe: <https://supply-news.example/u/abc>,"
        " <mailto:u-abc@supply-news.example>\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\nPrecedence: bulk\n"
        "Feedback-ID: 1234:news:esp\nContent-Type: text/html; charset=utf-8\n\n<p>Deals</p>\n",
        envelope_from="bounce-abc@mta.supply-news.example",
        kind="bulk",
        reason="Precedence: bulk",
    )
    # -------------------------------------------- ordinary orders: never held
    pdf_part = (
        'Content-Type: multipart/mixed; boundary="po"\n\n--po\nContent-Type: text/plain\n\n'
        "Please see the attached order.\n--po\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="PO.pdf"\nContent-Transfer-Encoding: base64\n\n'
        f"{PDF_B64}\n--po--\n"
    )
    ordinary = {
        "order_re_automatic_reorder": (
            "Subject: Re: automatic reorder\nMessage-ID: <o1@customer.example>\n"
            "In-Reply-To: <q1@orders.example.com>\n" + pdf_part,
            None,
            None,
        ),
        "order_out_of_office_supplies": (
            "Subject: Order: out of office supplies (toner, paper)\n"
            "Message-ID: <o2@customer.example>\n" + pdf_part,
            None,
            None,
        ),
        "order_undeliverable_items": (
            "Subject: Replacement for undeliverable items, PO 88\n"
            "Message-ID: <o3@customer.example>\n" + pdf_part,
            None,
            None,
        ),
        "order_auto_submitted_no": (
            "Subject: PO 4713\nMessage-ID: <o4@customer.example>\nAuto-Submitted: no\n" + pdf_part,
            None,
            None,
        ),
        "order_outlook_exchange_fields": (
            "Subject: Bestellung 2025-11-25\nMessage-ID: <o5@customer.example>\n"
            "Thread-Topic: Bestellung 2025-11-25\nX-MS-Has-Attach: yes\n"
            "X-MS-Exchange-Organization-SCL: -1\nX-MS-Exchange-CrossTenant-Network-Message-Id: 1f\n"
            "X-MS-TNEF-Correlator:\n" + pdf_part,
            None,
            None,
        ),
        "order_forwarding_an_auto_reply": (
            "Subject: Fw: Automatic reply: PO 4711 - please order anyway\n"
            "Message-ID: <o6@customer.example>\n"
            'Content-Type: multipart/mixed; boundary="fw"\n\n--fw\nContent-Type: text/plain\n\n'
            "Our buyer is away; please ship PO 4711 as planned.\n--fw\n"
            "Content-Type: message/rfc822\n\nFrom: anna@customer.example\n"
            "Subject: Automatic reply: PO 4711\nAuto-Submitted: auto-replied\n"
            "X-Autoreply: yes\n\nI am out of the office.\n--fw--\n",
            None,
            None,
        ),
        "order_plain_reply": (
            "Subject: AW: Angebot 7781\nMessage-ID: <o7@customer.example>\n"
            "References: <a7781@orders.example.com>\nContent-Type: text/plain; charset=utf-8\n\n"
            "Wir bestellen 200 Stück wie angeboten.\n",
            None,
            None,
        ),
        "order_erp_precedence_bulk": (
            "Subject: Purchase order 4500012345\nMessage-ID: <4500012345@erp.customer.example>\n"
            "X-Mailer: SAP NetWeaver 7.50\nPrecedence: bulk\n" + pdf_part,
            "bulk",
            "Precedence: bulk",
        ),
        "order_erp_auto_response_suppress": (
            "Subject: Purchase order PO-000318\nMessage-ID: <po318@erp.customer.example>\n"
            "X-Auto-Response-Suppress: All\n" + pdf_part,
            "bulk",
            "X-Auto-Response-Suppress",
        ),
    }
    for name, (rest, kind, reason) in ordinary.items():
        case(
            name,
            "From: Buyer <buyer@customer.example>\n" + ORDER + rest,
            envelope_from="buyer@customer.example",
            kind=kind,
            reason=reason,
            ordinary=True,
        )


def main() -> None:
    build()
    check = "--check" in sys.argv
    expected = {name: item["expected"] for name, item in sorted(CASES.items())}
    wanted = {f"{name}.eml": item["text"].encode() for name, item in CASES.items()}
    wanted["expected.json"] = (json.dumps(expected, indent=1, ensure_ascii=False) + "\n").encode()
    if check:
        stale = [
            n
            for n, data in wanted.items()
            if not (OUT / n).is_file() or (OUT / n).read_bytes() != data
        ]
        if stale:
            raise SystemExit(f"out of date: {', '.join(sorted(stale))}; run build_automated.py")
        return
    OUT.mkdir(exist_ok=True)
    for name, data in wanted.items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(CASES)} messages to {OUT}")


if __name__ == "__main__":
    main()
