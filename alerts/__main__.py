"""`python -m alerts [--config FILE]`: regenerate alerts/rules/ and the Alertmanager
example from the config (default alerts/config.yaml)."""

from __future__ import annotations

import argparse
import sys

from alerts.config import AlertsConfigError, load_config
from alerts.generate import generated_files, write_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alerts", description=__doc__)
    parser.add_argument("--config", default=None, help="alerts config YAML")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except AlertsConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    changed = write_files(generated_files(cfg))
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
