"""Automated mail: auto-replies, bounces, feedback reports, list and bulk mail.

``classify`` (pure) reads the stored message's fields and, for reports, its
structure (``report``, ``subjects``); ``policy`` (pure) says extract or hold per
tenant and kind; ``gate`` is the worker step. One entrance: import from
``ingest_core.automated``. docs/automated-mail.md describes the signals.
"""

from ingest_core.automated.classify import NOT_AUTOMATED, classify
from ingest_core.automated.gate import AutomatedCheck, check_automated
from ingest_core.automated.policy import (
    DEFAULT_ACTIONS,
    AutomatedAction,
    AutomatedPolicy,
    hold_reason,
)

__all__ = [
    "DEFAULT_ACTIONS",
    "NOT_AUTOMATED",
    "AutomatedAction",
    "AutomatedCheck",
    "AutomatedPolicy",
    "check_automated",
    "classify",
    "hold_reason",
]
