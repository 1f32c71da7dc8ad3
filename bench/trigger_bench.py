"""Retrain trigger benchmark: alert delivered → Job object created, p50/p99 over N alerts.

    python -m bench.trigger_bench [--alerts 100]

Set-up: a real control plane (`driftwarden.services.kubernetes`: etcd, kube-apiserver,
controller-manager, scheduler, kwok) and the trigger in this process (`TriggerService`, the
same wiring as `driftwarden trigger run`, lineage off), on 127.0.0.1. Each alert is a new
episode of one model (distinct `startsAt`), so each one launches a Job; the policy's pods
are unschedulable (a node selector no node has) so the fake node does not add load.

The trigger answers the webhook only after the API server has accepted the Job, so the
HTTP round trip (request write → response read) bounds "delivered → Job object created"
from above. Sequential deliveries, one at a time, as Alertmanager sends one group.
Prints a table and writes bench/results/trigger.json. Target (issue 12): p99 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from driftwarden.services.kubernetes import KubeControlPlane
from retrain_trigger.runner import TriggerService, TriggerSettings

RESULTS = Path(__file__).parent / "results" / "trigger.json"


def _notification(i: int) -> dict:
    starts = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=i)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    labels = {
        "alertname": "DriftwardenDatasetDrift",
        "model": "bench",
        "driftwarden_action": "retrain",
    }
    return {
        "version": "4",
        "groupKey": '{}:{model="bench"}',
        "status": "firing",
        "receiver": "driftwarden-retrain",
        "groupLabels": {"model": "bench"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": starts,
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster instead of starting one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plane = None if args.kubeconfig else KubeControlPlane(root / "k8s").start()
        kubeconfig = args.kubeconfig or plane.kubeconfig  # type: ignore[union-attr]
        try:
            namespace = f"bench-{secrets.token_hex(3)}"
            api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
            k8s_client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
            api.close()
            api.rest_client.pool_manager.clear()
            policies = root / "policies"
            policies.mkdir()
            (policies / "bench.yaml").write_text(
                yaml.safe_dump(
                    {
                        "model": "bench",
                        "namespace": namespace,
                        "trainer": {
                            "image": "img",
                            "node_selector": {"driftwarden.io/bench": "none"},
                        },
                        "spec": "/s.yaml",
                        "output": "/a",
                        "max_concurrent": 100,
                        "cooldown_s": 1,
                        "ttl_seconds_after_finished": 3600,
                    }
                )
            )
            token = root / "token"
            token.write_text("bench-token")
            settings = TriggerSettings(
                policies=policies,
                token_file=token,
                namespaces=(namespace,),
                kubeconfig=kubeconfig,
                host="127.0.0.1",
                port=0,
                bootstrap=None,
                max_in_flight=args.alerts + 1,
                watch_timeout_s=5,
            )
            with (
                TriggerService(settings) as svc,
                httpx.Client(headers={"Authorization": "Bearer bench-token"}, timeout=30) as client,
            ):
                warm_up = _notification(-1)
                warm_up["alerts"][0]["status"] = "resolved"
                client.post(f"{svc.url}/v1/alertmanager", json=warm_up)
                latencies = []
                for i in range(args.alerts):
                    body = json.dumps(_notification(i)).encode()
                    t0 = time.perf_counter()
                    r = client.post(f"{svc.url}/v1/alertmanager", content=body)
                    latencies.append(time.perf_counter() - t0)
                    decision = r.json()["decisions"][0]["decision"]
                    if decision != "launched":
                        raise SystemExit(f"alert {i}: {decision}, expected launched")
        finally:
            if plane is not None:
                plane.stop()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    result = {
        "alerts": args.alerts,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }
    print(f"{'alert → Job created':<24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    print(
        f"{args.alerts:>5} alerts{'':<14}{result['p50_ms']:>10}{result['p99_ms']:>10}{result['max_ms']:>10}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
