"""Mining inside the service: ``store`` (all mining SQL, rows <-> ``nlp.types``)
and ``miner`` (the per-process miner, the embedding cache path, the query embedder).

The activities in ``activities/mining.py`` and the search router are thin
callers of these two modules; nothing else writes statements, themes,
practices or theme models.
"""
