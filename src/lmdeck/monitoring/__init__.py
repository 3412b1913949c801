"""Monitoring: alert rules over :mod:`lmdeck.tracing.signals`, their lifecycle, notifications and actions,
anomaly detectors (:mod:`lmdeck.monitoring.anomaly`) and drift between two windows of a route's
traffic (:mod:`lmdeck.monitoring.drift`)."""
