"""On `data-source-refresh-failed`, post an Adaptive Card with the source, the
error and whether the failure is permanent to a Teams channel
(config `channel`, default `ops`)."""

import json
from typing import Any

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, teams
from wit_world.imports.types import (
    DataSourceRefreshFailed,
    Error,
    Error_InvalidQuery,
    Error_RateLimited,
    Event,
    Trigger_DataSourceRefreshFailed,
)


class Handler(exports.Handler):
    def on_event(self, event: Event) -> None:
        if not isinstance(event.trigger, Trigger_DataSourceRefreshFailed):
            return
        channel = config.get("channel") or "ops"
        card_json = json.dumps(card(event.trigger.value, event.occurred_at), ensure_ascii=False)
        try:
            teams.post_message(channel, teams.Message_Card(card_json))
        except Err as e:
            raise Err(f"posting to '{channel}': {describe(e.value)}")


def card(f: DataSourceRefreshFailed, at: str) -> dict[str, Any]:
    facts = [
        {"title": "Source", "value": f.source},
        {"title": "Error", "value": f.error},
        {"title": "Permanent", "value": "yes" if f.permanent else "no (retries exhausted)"},
        {"title": "Attempts", "value": str(f.attempts)},
        {"title": "Rows read", "value": str(f.rows_read)},
    ]
    if f.row is not None:
        facts.append({"title": "Row", "value": str(f.row)})
    if f.field is not None:
        facts.append({"title": "Field", "value": f.field})
    facts.append({"title": "When", "value": at})
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": f"Data source refresh failed: {f.source}",
                "weight": "Bolder",
                "size": "Medium",
                "color": "Attention",
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
        ],
    }


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
