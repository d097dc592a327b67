"""peerlearn: peerlearn."""
