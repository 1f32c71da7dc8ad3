"""Alertmanager routing for driftwarden: alerts labelled `driftwarden_action="retrain"` go
to the retrain trigger's webhook with a bearer token, one notification group per model.

`alertmanager_config(...)` is pure and returns the config as a dict; the committed example
(`alerts/alertmanager/alertmanager.example.yaml`) is rendered from it by `python -m alerts`,
and the end-to-end test runs a real Alertmanager on a config from the same function.
"""

from __future__ import annotations

from typing import Any

from alerts.rules import RETRAIN

RETRAIN_RECEIVER = "driftwarden-retrain"
DEFAULT_RECEIVER = "default"
EXAMPLE_FILE = "alertmanager.example.yaml"
#: Where the example sends retrain alerts: the retrain trigger's Service in the chart.
EXAMPLE_WEBHOOK_URL = "http://driftwarden-retrain-trigger.driftwarden.svc:8080/v1/alertmanager"
#: The example reads the token from a mounted Secret, never inline.
EXAMPLE_TOKEN_FILE = "/etc/alertmanager/secrets/driftwarden-retrain/token"


def alertmanager_config(
    webhook_url: str,
    *,
    token: str | None = None,
    token_file: str | None = None,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
    notify_others: bool = True,
) -> dict[str, Any]:
    """An Alertmanager config routing retrain alerts to `webhook_url`.

    Exactly one of `token` (inline, for tests) or `token_file` (a mounted Secret) gives the
    bearer token. Retrain alerts are grouped by `model` alone, so a model that raises
    dataset drift and a performance drop at once gets one webhook call, i.e. one retrain.
    With `notify_others`, the retrain route `continue`s to a catch-all route, so the same
    alerts also reach the default receiver (where a team wires its chat or pager).
    """
    if (token is None) == (token_file is None):
        raise ValueError("give exactly one of token or token_file")
    authorization: dict[str, str] = {"type": "Bearer"}
    if token is not None:
        authorization["credentials"] = token
    else:
        authorization["credentials_file"] = str(token_file)
    ((label, value),) = RETRAIN.items()
    retrain_route: dict[str, Any] = {
        "receiver": RETRAIN_RECEIVER,
        "matchers": [f'{label}="{value}"'],
        "group_by": ["model"],
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
        "continue": notify_others,
    }
    return {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname", "model"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            # `continue` only moves on to the next sibling route (never back to the
            # parent's receiver), hence the explicit catch-all after the retrain route.
            "routes": [retrain_route, {"receiver": DEFAULT_RECEIVER}]
            if notify_others
            else [retrain_route],
        },
        "receivers": [
            # Replace with your team's chat/pager receiver; it gets every alert.
            {"name": DEFAULT_RECEIVER},
            {
                "name": RETRAIN_RECEIVER,
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        # Every alert of the group: the trigger picks the model from them.
                        "max_alerts": 0,
                        "http_config": {"authorization": authorization},
                    }
                ],
            },
        ],
    }


def example_config() -> dict[str, Any]:
    """The committed example: production timers, token from a mounted Secret."""
    return alertmanager_config(EXAMPLE_WEBHOOK_URL, token_file=EXAMPLE_TOKEN_FILE)
