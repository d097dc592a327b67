"""peerlearn: nlp."""
