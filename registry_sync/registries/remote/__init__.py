"""The object stores that registries' remote assets live in (S3, GCS)."""
