"""registry-sync: keeps MODEL_ROOT on the production versions of Comet registry models."""

__version__ = "0.1.0"
