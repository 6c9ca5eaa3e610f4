"""One sidecar among replicas: election, the sealed decision on the Lease, peer fetch."""
