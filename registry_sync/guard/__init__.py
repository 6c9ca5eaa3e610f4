"""The promotion guard: watch a new champion's figures after a swap, roll it back when it hurts."""
