"""MODEL_ROOT's one writer: snapshots, publish, archives, installer, transfer, the state."""
