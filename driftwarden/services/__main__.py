"""`python -m driftwarden.services up|down|status`: the three real services, detached,
for the demo and the benchmarks (`make services-up`, `make services-down`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from driftwarden.errors import ServiceError
from driftwarden.services import stack
from driftwarden.services.kafka import prepare_cds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftwarden.services",
        description="Start, stop or inspect local Kafka, Prometheus and Alertmanager.",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(".services"), help="state folder (default .services)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start all three in the background, write <dir>/env")
    p_up.add_argument("--scrape-target", action="append", default=[], metavar="HOST:PORT")
    p_up.add_argument("--rule-file", action="append", default=[], type=Path, metavar="FILE")
    p_up.add_argument("--webhook-url", default=None, help="Alertmanager webhook receiver")
    p_up.add_argument("--scrape-interval", default="5s")
    p_up.add_argument("--evaluation-interval", default="5s")
    p_up.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    sub.add_parser("down", help="stop what `up` started; leaves nothing running")
    sub.add_parser("prepare", help="create Kafka's class-data-sharing archives (faster starts)")
    sub.add_parser("status", help="print PIDs and addresses; exit 1 unless all run")
    sub.add_parser("k8s-up", help="start a local Kubernetes control plane in <dir>/k8s")
    sub.add_parser("k8s-down", help="stop what `k8s-up` started")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            options = stack.StackOptions(
                scrape_targets=args.scrape_target,
                rule_files=[p.resolve() for p in args.rule_file],
                webhook_url=args.webhook_url,
                scrape_interval=args.scrape_interval,
                evaluation_interval=args.evaluation_interval,
                timeout=args.timeout,
            )
            env = stack.up(args.dir, options)
            for key, value in env.items():
                print(f"{key}={value}")
            return 0
        if args.command == "prepare":
            prepare_cds(log=lambda msg: print(f"services-install: {msg}"))
            return 0
        if args.command in ("k8s-up", "k8s-down"):
            from driftwarden.services import kubernetes

            if args.command == "k8s-up":
                kubernetes.up(args.dir / "k8s")
            elif not kubernetes.down(args.dir / "k8s"):
                print("k8s: nothing running")
            return 0
        if args.command == "down":
            stopped = stack.down(args.dir)
            if not stopped:
                print("services: nothing running")
            return 0
        running = stack.status(args.dir)
        for name, pid in running.items():
            print(f"{name}: {'running, pid ' + str(pid) if pid else 'not running'}")
        for key, value in stack.read_env(args.dir).items():
            print(f"{key}={value}")
        return 0 if all(running.values()) else 1
    except ServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
