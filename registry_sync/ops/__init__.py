"""The sidecar's own HTTP endpoints, its metrics and its status report."""
