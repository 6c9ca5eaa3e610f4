"""The sidecar's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


class SyncMetrics:
    """Counters and gauges of the sync loop."""

    def __init__(self, interval: float = 0.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Alerts compare the last success's age with the interval (docs/alerts/rules.yml).
        self.interval = Gauge("registry_sync_interval_seconds", "Configured seconds between polls",
                              registry=r)
        self.interval.set(interval)
        self.attempts = Counter("registry_sync_attempts", "Sync passes by outcome", ["outcome"],
                                registry=r)
        self.duration = Histogram("registry_sync_duration_seconds", "Duration of a sync pass",
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                                  registry=r)
        self.bytes = Counter("registry_sync_downloaded_bytes", "Bytes downloaded from the registry",
                             registry=r)
        self.leader = Gauge("registry_sync_leader",
                            "1 while this sidecar holds the election Lease (0: follower)",
                            registry=r)
        self.peer_bytes = Counter("registry_sync_peer_bytes", "Bytes fetched from peer replicas",
                                  registry=r)
        self.last_success = Gauge("registry_sync_last_success_timestamp_seconds",
                                  "Time of the last successful sync pass", registry=r)
        self.failures = Gauge("registry_sync_consecutive_failures",
                              "Failed sync passes in a row", registry=r)
        self.rejections = Counter("registry_sync_rejections", "Version sets rejected", ["reason"],
                                  registry=r)
        self.rollbacks = Counter("registry_sync_rollbacks",
                                 "Champions rolled back by the promotion guard, by the check "
                                 "that tripped (error_rate, latency, answers)", ["check"],
                                 registry=r)
        self.desired = Gauge("registry_sync_desired_version_info",
                             "Production version chosen in the registry", ["model", "version"],
                             registry=r)
        self.published = Gauge("registry_sync_published_version_info",
                               "Version in the published snapshot", ["model", "version"],
                               registry=r)
        self.registry_requests = Counter(
            "registry_sync_registry_requests", "Requests sent to the registry, by endpoint path "
            "template and status class (compare with Comet's per-key limits)",
            ["endpoint", "code"], registry=r)
        self.snapshot = Info("registry_sync_published_snapshot", "The published snapshot",
                             registry=r)

    def count_request(self, endpoint: str, status: int) -> None:
        """Count one registry request; status 0 means no answer (connection error, timeout)."""
        code = f"{status // 100}xx" if status else "none"
        self.registry_requests.labels(endpoint=endpoint, code=code).inc()

    def set_versions(self, gauge: Gauge, versions: dict[str, str]) -> None:
        """Make an info gauge show exactly these model versions."""
        gauge.clear()
        for model, version in versions.items():
            gauge.labels(model=model, version=version).set(1)
