"""The namespace and Lease the Kubernetes tests use on the stand-in API server."""

NAMESPACE, LEASE = "ml-serving", "comet-registry-sync"
