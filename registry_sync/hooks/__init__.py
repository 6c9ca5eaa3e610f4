"""What a pass tells others: serving's validate/reload handover, Kubernetes Events."""
