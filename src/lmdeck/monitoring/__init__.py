"""Monitoring: alert rules over :mod:`lmdeck.tracing.signals`, their lifecycle, notifications and actions,
and anomaly detectors (:mod:`lmdeck.monitoring.anomaly`)."""
