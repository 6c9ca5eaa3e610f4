"""Comet's model registry: client, finder, asset download, retry policy."""
