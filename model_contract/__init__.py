"""The contract between registry-sync and serving: the MODEL_ROOT layout, manifest.json, JSON logs.

Both the sidecar and serving import this package, and nothing else of each other, so each image
installs only what it runs.
"""
