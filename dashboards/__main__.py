"""`python -m dashboards`: regenerate dashboards/generated/*.json from the Python builders."""

from __future__ import annotations

import sys

from dashboards.generate import GENERATED_DIR, write_dashboards


def main() -> int:
    for path in write_dashboards(GENERATED_DIR):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
