"""Swapping the live model: the holder, validation jobs, the validator process, prefork."""
