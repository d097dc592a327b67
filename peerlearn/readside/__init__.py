"""The read side: queries over the projections, shared by ``api/`` and ``activities/``.

- :mod:`.filters`: the analyst filters, the grant clause and cursor pagination;
- :mod:`.themes`: themes with their recurrence, theme detail, ranked practices;
- :mod:`.search`: the candidate queries of semantic search;
- :mod:`.theme_map`: the 2-D map of statements (SQL and projection);
- :mod:`.report`: the ONE wrap-up report model, built from the read models, and
  its Markdown and HTML renderers.

Nothing here knows about HTTP: a bad request value raises a domain error from
:mod:`peerlearn.access`, which ``api/`` maps to problem+json.
"""
