-- The per-statement practices table of 0003 is gone: since 0014 the analyst
-- pages, exports, reports and search read the one-idea practices in
-- theme_practices, and nothing read this table any more; the miner kept
-- re-ranking it on every refresh for nobody (and erasure kept deleting from it).
DROP TABLE IF EXISTS practices;
