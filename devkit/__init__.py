"""Developer tools run from a checkout: the demo, and what tests, bench and demo share."""
