"""The Prometheus adapter: instant queries over the HTTP API, and the analysis built on them.

`PrometheusClient.value(promql)` answers one number, or None when the query returns no
series. Failures map onto `driftwarden.errors`: unreachable, timeouts and 5xx/429 are
`RetryLater`; 4xx (a query Prometheus rejects) is `GiveUp`. `Analyzer.analyse` evaluates
every check's expressions and judges them (`queries.judge`); a check whose queries cannot
be answered is inconclusive with the reason, so an outage never passes a canary.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from driftwarden.errors import ExternalError, GiveUp, RetryLater
from retrain_trigger.canary.machine import CheckResult, Verdict
from retrain_trigger.canary.queries import CheckQueries, QueryContext, build_queries, judge
from retrain_trigger.policy import CanaryThresholds

__all__ = ["Analyzer", "PrometheusClient"]

log = logging.getLogger(__name__)


class PrometheusClient:
    """GET <url>/api/v1/query for instant vectors and scalars."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, promql: str) -> list[dict]:
        """The raw `data.result` (a vector's samples; a scalar as one sample)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        what = f"Prometheus query at {self.url}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = _error_text(e)
            text = f"{what}: HTTP {e.code}: {detail}"
            if e.code == 429 or e.code >= 500:
                raise RetryLater(text) from e
            raise GiveUp(f"{text} (query: {promql})") from e
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise RetryLater(f"{what}: {e}") from e
        except ValueError as e:
            raise RetryLater(f"{what}: not JSON: {e}") from e
        if body.get("status") != "success":
            raise GiveUp(f"{what}: {body.get('error', body)} (query: {promql})")
        data = body.get("data") or {}
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data.get("result") or [])

    def value(self, promql: str) -> float | None:
        """The single number the query answers; None with no series. Several series (a
        query that did not aggregate) is a programming error: GiveUp."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise GiveUp(f"query returned {len(result)} series, expected one: {promql}")
        v = float(result[0]["value"][1])
        return None if math.isnan(v) else v


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        return json.loads(e.read()).get("error", e.reason)
    except (ValueError, OSError):
        return str(e.reason)


@dataclass
class Analyzer:
    """Runs the checks of one step against Prometheus."""

    prometheus: PrometheusClient

    def analyse(
        self,
        *,
        model: str,
        canary: str,
        stable: str,
        thresholds: CanaryThresholds,
        window_s: int,
        lookback_s: int,
    ) -> list[CheckResult]:
        ctx = QueryContext.of(model, canary, stable, window_s=window_s, lookback_s=lookback_s)
        return [self._check(q) for q in build_queries(ctx, thresholds).values()]

    def _check(self, q: CheckQueries) -> CheckResult:
        values: dict[str, float | None] = {}
        try:
            for name, expr in q.expressions().items():
                values[name] = self.prometheus.value(expr)
        except ExternalError as e:
            log.warning("check %s could not be evaluated: %s", q.check, e)
            return CheckResult(q.check, Verdict.INCONCLUSIVE, limit=q.limit, reason=str(e)[:300])
        return judge(q, values)
