"""The exception tree every component raises at its boundary.

A `DriftwardenError` is a user-facing problem: the CLI prints its message as one line
and exits non-zero. Anything else escaping a command is a bug and keeps its traceback.
"""


class DriftwardenError(Exception):
    """Base of every error a user can cause (bad file, bad spec, bad flag)."""


class DataFileError(DriftwardenError):
    """A data file is missing, unreadable or has the wrong columns."""


class ConfigError(DriftwardenError):
    """A settings/policy file is missing, not YAML, or invalid; the message is one line that
    names the file, the field and the problem (`driftwarden.config.load_yaml_model`)."""


class SpecError(ConfigError):
    """A model monitoring spec is invalid; the message names the field and the problem."""


class ServiceError(DriftwardenError):
    """A real service (Kafka, Prometheus, Alertmanager) could not be installed or started."""


# --- The boundary vocabulary: what a caller does when Kafka, HTTP, Kubernetes or disk fails ---


class ExternalError(Exception):
    """A call across a boundary (Kafka, HTTP, Kubernetes, disk) failed.

    Adapters raise one of the two subclasses, chaining the library's error (`raise ... from e`),
    so that the code deciding what to do next reads one attribute, not library error codes.
    """

    retry: bool = False


class RetryLater(ExternalError):
    """Transient: the same call may succeed later (broker or API server unreachable, timeout,
    HTTP 5xx/429, Kubernetes 409 conflict). Retry with back-off; never drop data for it."""

    retry = True


class GiveUp(ExternalError):
    """Permanent: repeating the call cannot succeed (record larger than the broker accepts,
    HTTP 4xx, Kubernetes 403/422, invalid configuration). Dead-letter, count, and move on."""

    retry = False
