"""The registries the sidecar reads: the Registry protocol, and its implementations."""
