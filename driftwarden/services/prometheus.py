"""Prometheus from Debian's `prometheus` package, on 127.0.0.1 with its own data directory.

prom = PrometheusServer(tmp_path / "prom", config_yaml=render_prometheus_config(
    scrape_targets=["127.0.0.1:8000"], rule_files=["alerts/rules.yml"]))
prom.start()
prom.wait_for('up{job="driftwarden"} == 1')
prom.stop()
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from driftwarden.errors import ServiceError
from driftwarden.services.http import request_json
from driftwarden.services.ports import LOOPBACK
from driftwarden.services.server import HttpServerProcess

BINARY = "prometheus"
DEFAULT_JOB = "driftwarden"

# --- pure configuration ------------------------------------------------------------------


def alertmanager_target(url: str) -> dict[str, Any]:
    """Prometheus' `alertmanagers` entry for an Alertmanager base URL."""
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"Alertmanager URL needs host and port: {url!r}")
    entry: dict[str, Any] = {
        "scheme": parsed.scheme,
        "static_configs": [{"targets": [f"{parsed.hostname}:{parsed.port}"]}],
        "timeout": "5s",
        "api_version": "v2",
    }
    if parsed.path.strip("/"):
        entry["path_prefix"] = parsed.path
    return entry


def render_prometheus_config(
    *,
    scrape_targets: Iterable[str] = (),
    rule_files: Iterable[Path | str] = (),
    alertmanager_url: str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    job_name: str = DEFAULT_JOB,
    metrics_path: str = "/metrics",
    file_sd_files: Iterable[Path | str] = (),
    extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """prometheus.yml: one job `job_name` scraping `scrape_targets` ("host:port") and,
    when given, targets from `file_sd_files` (globs allowed, re-read on change); rule files
    as absolute paths; alerts sent to `alertmanager_url`."""
    scrape_interval_s = _seconds(scrape_interval)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            # A scrape may not outlast its interval.
            "scrape_timeout": scrape_interval if scrape_interval_s < 10 else "10s",
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [],
    }
    targets = list(scrape_targets)
    sd_files = [str(Path(p).resolve()) for p in file_sd_files]
    if targets or sd_files:
        job: dict[str, Any] = {"job_name": job_name, "metrics_path": metrics_path}
        if targets:
            job["static_configs"] = [{"targets": targets}]
        if sd_files:
            job["file_sd_configs"] = [{"files": sd_files, "refresh_interval": "5s"}]
        config["scrape_configs"].append(job)
    config["scrape_configs"].extend(dict(c) for c in extra_scrape_configs)
    if alertmanager_url:
        config["alerting"] = {"alertmanagers": [alertmanager_target(alertmanager_url)]}
    return yaml.safe_dump(config, sort_keys=False)


def _seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as '500ms', '1s', '2m' (single unit)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in ("ms", "s", "m", "h", "d"):
        if duration.endswith(suffix) and duration[: -len(suffix)].isdigit():
            return int(duration[: -len(suffix)]) * units[suffix]
    raise ValueError(f"unsupported duration {duration!r} (use e.g. '500ms', '1s', '2m')")


# --- the server process ------------------------------------------------------------------


class PrometheusServer(HttpServerProcess):
    """A Prometheus server with its own TSDB directory, `--web.enable-lifecycle` on (so
    `reload()` re-reads config and rule files)."""

    name = "prometheus"
    default_binary = BINARY

    def flags(self) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=info",
        ]

    # --- HTTP API ------------------------------------------------------------------------

    def api(self, path: str, params: dict[str, str] | None = None, method: str = "GET") -> Any:
        """`data` of a /api/v1 answer; ServiceError when Prometheus reports an error."""
        answer = request_json(f"{self.url}/api/v1/{path.lstrip('/')}", params=params, method=method)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise ServiceError(f"Prometheus /api/v1/{path} failed: {answer}")
        return answer.get("data")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list (`[{"metric": {...}, "value": [ts, "v"]}, ...]`
        for a vector; a scalar or string comes back as a one-element list)."""
        data = self.api("query", {"query": promql})
        result = data["result"]
        if data.get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Poll `query(promql)` until it returns data (and `predicate(result)` is true);
        return that result. ServiceError at the deadline, with the last result."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(promql)
            if result and (predicate is None or predicate(result)):
                return result
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"Prometheus {self.url}: {promql!r} did not return matching data within "
                    f"{timeout:.0f}s; last result: {result}"
                )
            time.sleep(interval)

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) from /api/v1/alerts."""
        return list(self.api("alerts")["alerts"])

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets from /api/v1/targets."""
        return list(self.api("targets")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        """Loaded rule groups from /api/v1/rules."""
        return list(self.api("rules")["groups"])

    def reload(self, config_yaml: str | None = None) -> None:
        """Rewrite the config (when given) and ask Prometheus to reload it and its rules."""
        if config_yaml is not None:
            self.config_yaml = config_yaml
            self.config_path.write_text(config_yaml)
        request_json(f"{self.url}/-/reload", method="POST")
