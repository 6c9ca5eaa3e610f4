"""Shared by the processes, never the disk: settings, Comet's root, the Bearer check."""
