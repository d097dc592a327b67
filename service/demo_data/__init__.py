"""Demo programme texts, written for peerlearn (not taken from any source)."""
