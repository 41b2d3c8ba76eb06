"""Subject lines that look like an auto-reply or a bounce, in several languages.

A weak signal: it never classifies a message on its own (customers write
"Re: automatic reorder" or "Out of office supplies, order 7"). It only chooses
between kinds when a field already says the message was machine-sent.
"""

from __future__ import annotations

import re

_AUTO_REPLY = (
    r"out of (the )?office",
    r"automatic reply",
    r"auto[- ]?reply",
    r"auto[- ]?response",
    r"autosvar",  # da, no, sv
    r"abwesenheit",  # de: Abwesenheitsnotiz
    r"automatische antwort",
    r"r[ée]ponse automatique",  # fr
    r"absence du bureau",
    r"respuesta autom[áa]tica",  # es
    r"fuera de la oficina",
    r"risposta automatica",  # it
    r"fuori (sede|ufficio)",
    r"automatisch antwoord",  # nl
    r"afwezig",
    r"resposta autom[áa]tica",  # pt
    r"odpowied[źz] automatyczna",  # pl
    r"automaattinen vastaus",  # fi
    r"自動応答",  # ja
    r"自动回复",  # zh
    r"on vacation",
)
_BOUNCE = (
    r"undeliverable",
    r"undelivered mail",
    r"delivery status notification",
    r"mail delivery (failed|failure|subsystem)",
    r"delivery (has )?failed",
    r"returned mail",
    r"failure notice",
    r"unzustellbar",  # de
    r"nicht zustellbar",
    r"non remis",  # fr
    r"non distribuable",
    r"no se puede entregar",  # es
    r"non recapitabile",  # it
    r"onbestelbaar",  # nl
    r"n[ãa]o entregue",  # pt
)
_AUTO_REPLY_RE = re.compile("|".join(_AUTO_REPLY), re.IGNORECASE)
_BOUNCE_RE = re.compile("|".join(_BOUNCE), re.IGNORECASE)


def looks_like_auto_reply(subject: str | None) -> bool:
    return subject is not None and _AUTO_REPLY_RE.search(subject) is not None


def looks_like_bounce(subject: str | None) -> bool:
    return subject is not None and _BOUNCE_RE.search(subject) is not None
