"""The sync core: the leader's pass, the follower, the challenger, the daemon's loop."""
