"""On `segment-threshold-crossed`, email the data owners (config `group`,
default `data-owners`) with the segment, threshold, previous and current size."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, email
from wit_world.imports.types import (
    Error,
    Error_InvalidQuery,
    Error_RateLimited,
    Event,
    Trigger_SegmentThresholdCrossed,
)


class Handler(exports.Handler):
    def on_event(self, event: Event) -> None:
        if not isinstance(event.trigger, Trigger_SegmentThresholdCrossed):
            return
        s = event.trigger.value
        direction = s.direction.name.lower()  # Direction.UP -> "up"
        group = config.get("group") or "data-owners"
        subject = (
            f'Segment "{s.segment}" crossed {s.threshold} ({direction}): '
            f"{s.previous} -> {s.current}"
        )
        text = (
            f'The segment "{s.segment}" crossed its threshold.\n\n'
            f"Threshold: {s.threshold}\nDirection: {direction}\n"
            f"Previous size: {s.previous}\nCurrent size: {s.current}\n"
            f"When: {event.occurred_at}\nEvent: {event.id}\n"
        )
        html = (
            f"<p>The segment <b>{escape(s.segment)}</b> crossed its threshold.</p>"
            f"<table><tr><td>Threshold</td><td>{s.threshold}</td></tr>"
            f"<tr><td>Direction</td><td>{direction}</td></tr>"
            f"<tr><td>Previous size</td><td>{s.previous}</td></tr>"
            f"<tr><td>Current size</td><td>{s.current}</td></tr></table>"
        )
        message = email.Message(to=[group], cc=[], subject=subject, text=text, html=html)
        try:
            email.send(message)
        except Err as e:
            raise Err(f"emailing '{group}': {describe(e.value)}")


def escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe(e: Error) -> str:
    """The same text as the Rust SDK's `Error::describe`."""
    if isinstance(e, Error_InvalidQuery):
        return f"invalid query at {e.value.position}: {e.value.message}"
    if isinstance(e, Error_RateLimited):
        return f"rate limited: retry after {e.value} ms"
    label = {
        "Error_Denied": "denied",
        "Error_NotFound": "not found",
        "Error_Unavailable": "unavailable",
        "Error_InvalidArgument": "invalid argument",
        "Error_DeadlineExceeded": "deadline exceeded",
    }[type(e).__name__]
    return f"{label}: {e.value}"
