"""Process entry points: the ``peerlearn`` CLI, the ``make run`` supervisor, the
worker, the API server, the demo loader and the maintenance commands.

This package sits above every other one and only assembles them; nothing in
``peerlearn/``, ``workflows/``, ``activities/``, ``nlp/`` or ``api/`` imports it.
"""
