"""The fast unit tier (``make test-fast``): pure functions only.

Tests here must not use the PostgreSQL, Temporal or model fixtures of
``tests/conftest.py``, so the whole folder runs in well under a minute on a
laptop and can be run on every save.
"""
