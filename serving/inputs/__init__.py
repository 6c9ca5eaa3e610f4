"""Inputs: a model's signature (schema) and the request checks that turn bodies into its matrix."""
