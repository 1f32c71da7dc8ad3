"""Retrain trigger: Alertmanager webhook receiver, retraining Jobs, canary controller.

Not built yet; see README.md's component status.
"""
