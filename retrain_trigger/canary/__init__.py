"""The canary controller: a retrained version rolled out step by step, judged on ML metrics
from Prometheus (canary vs stable by the `version` label), promoted or rolled back
(docs/canary.md)."""

from retrain_trigger.canary.machine import CheckResult, Phase, RolloutState, Verdict
from retrain_trigger.canary.routers import ROUTER_KINDS, Router, RouterError, make_router

__all__ = [
    "ROUTER_KINDS",
    "CheckResult",
    "Phase",
    "RolloutState",
    "Router",
    "RouterError",
    "Verdict",
    "make_router",
]
