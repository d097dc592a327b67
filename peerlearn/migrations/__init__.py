"""Versioned SQL migrations, applied in file-name order by ``peerlearn.db.migrate``.

Numbering: 0001 base, 0002 cycle engine (events, read models, outbox),
0003 mining (statements, themes, practices), 0004 access control.
"""
