"""peerlearn: api."""
