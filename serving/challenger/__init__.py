"""Champion and challenger: roles, shadow scoring, canary, their comparison and its verdict log."""
