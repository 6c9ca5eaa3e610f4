"""Telemetry: Prometheus metrics, prediction ids, and prediction events to Comet MPM."""
