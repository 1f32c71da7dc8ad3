"""`python -m detectors.service [flags]`: the same as `driftwarden detectors run [flags]`.

Flags and DRIFTWARDEN_<FLAG> variables are those of `detectors.service.settings.FLAGS`; a
user mistake is one `error: ...` line on stderr and exit status 2. (The component has its
own entry point so that it never imports the CLI, which sits a layer above it.)
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

from detectors.service import run_until_signalled
from detectors.service.settings import FLAGS, ServiceSettings
from driftwarden.errors import DriftwardenError
from driftwarden.flags import settings_from_args
from driftwarden.kafka import security_from_args
from driftwarden.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    try:
        security, rest = security_from_args(
            sys.argv[1:] if argv is None else argv, os.environ, prog="python -m detectors.service"
        )
        settings = settings_from_args(
            ServiceSettings,
            FLAGS,
            rest,
            os.environ,
            prog="python -m detectors.service",
            error=DriftwardenError,
        )
        settings = dataclasses.replace(settings, kafka_security=security.check())
        configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
        run_until_signalled(settings)
    except DriftwardenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
