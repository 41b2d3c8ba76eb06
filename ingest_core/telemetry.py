"""OpenTelemetry set-up from the standard ``OTEL_*`` variables.

Without any of them, the API's no-op tracer is used and spans cost nearly
nothing. ``OTEL_TRACES_EXPORTER=console`` prints spans; ``otlp`` needs the
``opentelemetry-exporter-otlp`` package installed beside this one.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import propagate, trace

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Mapping

log = logging.getLogger("ingest.telemetry")

T = TypeVar("T")


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install an SDK tracer provider when the environment asks for one."""
    env = os.environ if environ is None else environ
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporter_name and "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
        exporter_name = "otlp"
    if exporter_name in ("", "none") or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL exporter otlp requested but opentelemetry-exporter-otlp is missing")
            return False
        exporter = OTLPSpanExporter()
    else:
        log.warning("unsupported OTEL_TRACES_EXPORTER", extra={"exporter": exporter_name})
        return False
    name = env.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to carry with a job."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C traceparent naming ``span`` (None when it is not recorded)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def link_from(traceparent: str | None) -> list[trace.Link]:
    """A span link to the span a carried traceparent names (none if absent)."""
    if not traceparent:
        return []
    context = propagate.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []


def run_in(
    context: contextvars.Context | None, fn: Callable[..., T], *args: object, **kwargs: object
) -> T:
    """``fn`` in ``context`` (a delivery's: its current span and log fields), or
    in the caller's when there is none."""
    return context.run(fn, *args, **kwargs) if context is not None else fn(*args, **kwargs)
