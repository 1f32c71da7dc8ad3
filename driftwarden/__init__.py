"""driftwarden: observability and drift monitoring for ML models on Kubernetes.

This small package holds what every component shares: the event schema, the model
monitoring spec, the metric catalogue and the command line.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
