-- Analyst curation (issue 11 item 6): corrections of the miner that last.
--
-- Each correction is an event on the mining stream (the audit trail); these
-- tables are its projection, the curation STATE the mining store re-applies
-- after every clustering (peerlearn.mining.curation.apply_curation), so the
-- miner (nlp/) stays pure and a re-mine cannot undo an analyst's decision.
-- They are keyed by the corrected object, so replaying the log is idempotent.

-- A theme's title set by an analyst. pinned: the next re-mine keeps it;
-- unpinned: a rename the next re-mine may replace (the row is then dropped).
CREATE TABLE IF NOT EXISTS curated_theme_titles (
    theme_id   text PRIMARY KEY,
    title      text NOT NULL,
    pinned     boolean NOT NULL DEFAULT false,
    key_id     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Theme theme_id was merged into into_id: its statements (now and after any
-- re-mine) belong to into_id, and it stays retired. into_id is kept resolved
-- (merging B into C rewrites A->B to A->C), so one lookup suffices.
CREATE TABLE IF NOT EXISTS curated_theme_merges (
    theme_id   text PRIMARY KEY,
    into_id    text NOT NULL,
    key_id     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Themes an analyst created (by moving statements into a NEW theme): the
-- miner never produces their ids, so re-mines must not retire them.
CREATE TABLE IF NOT EXISTS curated_themes (
    theme_id   text PRIMARY KEY,
    scope      text NOT NULL,
    key_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Per statement: the theme it was moved to, its corrected kind, whether hidden.
CREATE TABLE IF NOT EXISTS curated_statements (
    statement_id text PRIMARY KEY,
    theme_id     text,              -- moved here (NULL: the miner decides)
    kind         text,              -- corrected kind (NULL: the miner decides)
    hidden       boolean NOT NULL DEFAULT false,
    hidden_from  text,              -- the theme it left when hidden (where "show" puts it back)
    key_id       text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS curated_statements_theme ON curated_statements (theme_id);

-- Hidden statements keep their row (notes, audit) but leave every theme, count
-- and list: theme_id is NULL while hidden, and the read side skips them.
ALTER TABLE statements ADD COLUMN IF NOT EXISTS hidden boolean NOT NULL DEFAULT false;

-- A curated title is what every caller reads (restricted keys included: the
-- analyst chose it, it is not text mined from another programme's notes).
CREATE OR REPLACE FUNCTION theme_label_for(p_theme text, p_programmes text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT c.title FROM curated_theme_titles c WHERE c.theme_id = p_theme),
    CASE WHEN p_programmes IS NULL THEN (SELECT label FROM themes WHERE id = p_theme)
    ELSE (SELECT l.label FROM theme_labels l
          WHERE l.theme_id = p_theme AND l.programme_id = ANY(p_programmes)
          ORDER BY l.size DESC, l.programme_id LIMIT 1)
    END)
$$;
