"""The exception tree every component raises at its boundary.

A `DriftwardenError` is a user-facing problem: the CLI prints its message as one line
and exits non-zero. Anything else escaping a command is a bug and keeps its traceback.
"""


class DriftwardenError(Exception):
    """Base of every error a user can cause (bad file, bad spec, bad flag)."""


class DataFileError(DriftwardenError):
    """A data file is missing, unreadable or has the wrong columns."""


class SpecError(DriftwardenError):
    """A model monitoring spec is invalid; the message names the field and the problem."""


class ServiceError(DriftwardenError):
    """A real service (Kafka, Prometheus, Alertmanager) could not be installed or started."""
