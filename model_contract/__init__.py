"""What registry-sync and serving share: the MODEL_ROOT layout, manifest, JSON logs, Comet keys,
secret files.

Both the sidecar and serving import this package, and nothing else of each other, so each image
installs only what it runs.
"""
