"""Labelled statements and the shipped weights of the kind classifier (nlp.kinds)."""
