"""{{name}}: a Triggerfish plugin.

Posts a short Adaptive Card to the Teams channel named by config `channel`
(default `ops`) for every event it receives. Put your own logic in `on_event`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, teams
from wit_world.imports.types import Event, Trigger


class Handler(exports.Handler):
    def on_event(self, event: Event) -> None:
        # `event.trigger` is one of the `Trigger_*` classes; `.value` holds its record.
        channel = config.get("channel") or "ops"
        card = {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": f"Triggerfish: {trigger_kind(event.trigger)}",
                 "weight": "Bolder", "wrap": True},
                {"type": "FactSet", "facts": [
                    {"title": "Event", "value": event.id},
                    {"title": "When", "value": event.occurred_at},
                ]},
            ],
        }
        try:
            teams.post_message(channel, teams.Message_Card(json.dumps(card)))
        except Err as e:
            # A host error (`types.Error`) arrives as Err; raising Err(str) fails the run.
            raise Err(f"posting to '{channel}': {e.value}")


def trigger_kind(trigger: Trigger) -> str:
    """`Trigger_SegmentThresholdCrossed` -> `segment-threshold-crossed`."""
    name = type(trigger).__name__.removeprefix("Trigger_")
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
