-- Mining: statements, their embeddings, themes, practices, models and runs.
--
-- Ids are text and carry no foreign keys to the cycle engine's tables (0002):
-- statements copy the programme/cycle/meeting/organisation ids of their note so
-- every analyst query filters one table, and a note can be mined before its
-- read models are complete.

-- Embedding cache: one raw (normalised, 'query: '-prefixed e5) vector per
-- distinct text, so a text is never encoded twice, whatever note it is in.
CREATE TABLE IF NOT EXISTS embeddings (
    content_hash text PRIMARY KEY,
    embedding    vector(384) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS embeddings_hnsw
    ON embeddings USING hnsw (embedding vector_cosine_ops);

-- One row per statement (sentence / bullet) of a submitted note.
-- id = '<note_id>#<position>'. theme_id is NULL while unassigned.
CREATE TABLE IF NOT EXISTS statements (
    id              text PRIMARY KEY,
    note_id         text NOT NULL,
    position        integer NOT NULL,
    programme_id    text,
    cycle_id        text,
    meeting_id      text,
    organisation_id text,
    text            text NOT NULL,
    language        text NOT NULL,           -- ISO 639-1
    kind            text NOT NULL DEFAULT 'other',
        -- lesson | recommendation | best_practice | challenge | success | other
    heading         text,
    content_hash    text NOT NULL,           -- key into embeddings
    lemmas          text[] NOT NULL DEFAULT '{}',  -- for keyphrases when re-mining
    theme_id        text,                    -- key into themes (no FK: themes are replaced per run)
    source_date     date,                    -- meeting (or note) date: trends, since/until
    map_x           real,                    -- 2-D projection for the theme map (set by re-mining)
    map_y           real,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (note_id, position)
);
CREATE INDEX IF NOT EXISTS statements_theme ON statements (theme_id);
CREATE INDEX IF NOT EXISTS statements_programme ON statements (programme_id, theme_id);
CREATE INDEX IF NOT EXISTS statements_cycle ON statements (cycle_id);
CREATE INDEX IF NOT EXISTS statements_meeting ON statements (meeting_id);
CREATE INDEX IF NOT EXISTS statements_note ON statements (note_id);
CREATE INDEX IF NOT EXISTS statements_org ON statements (organisation_id);
CREATE INDEX IF NOT EXISTS statements_language ON statements (language);
CREATE INDEX IF NOT EXISTS statements_kind ON statements (kind);
CREATE INDEX IF NOT EXISTS statements_date ON statements (source_date);
CREATE INDEX IF NOT EXISTS statements_hash ON statements (content_hash);

-- Themes of the current model of each scope ('all' or a programme id).
-- Retired themes stay (retired_at set) so old links and events still resolve.
CREATE TABLE IF NOT EXISTS themes (
    id              text PRIMARY KEY,
    scope           text NOT NULL DEFAULT 'all',
    label           text NOT NULL,
    keyphrases      jsonb NOT NULL DEFAULT '[]',
    size            integer NOT NULL DEFAULT 0,
    languages       jsonb NOT NULL DEFAULT '{}',   -- {"en": 12, "sv": 4, ...}
    representatives jsonb NOT NULL DEFAULT '{}',   -- {"en": [{"id","text"}...], ...}
    recurrence      jsonb NOT NULL DEFAULT '{}',   -- distinct programmes/cycles/orgs/languages, trend
    cycles          integer NOT NULL DEFAULT 0,    -- distinct cycles (sorting by recurrence)
    organisations   integer NOT NULL DEFAULT 0,
    programmes      integer NOT NULL DEFAULT 0,
    first_seen      date,
    last_seen       date,
    run_id          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);
CREATE INDEX IF NOT EXISTS themes_scope ON themes (scope) WHERE retired_at IS NULL;
CREATE INDEX IF NOT EXISTS themes_recurrence ON themes (cycles DESC, size DESC, id);

-- Lessons, recommendations and best practices: one row per practice statement,
-- ranked inside its theme by independent support (distinct cycles and
-- organisations whose statements in the theme say something close).
CREATE TABLE IF NOT EXISTS practices (
    statement_id          text PRIMARY KEY,
    theme_id              text NOT NULL,
    kind                  text NOT NULL,
    audience              text NOT NULL DEFAULT 'future_partnerships',
        -- future_partnerships | organisations | funders (recommendations)
    support_cycles        integer NOT NULL DEFAULT 1,
    support_organisations integer NOT NULL DEFAULT 1,
    support_statements    text[] NOT NULL DEFAULT '{}',  -- statement ids that back it (incl. itself)
    score                 double precision NOT NULL DEFAULT 0,
    rank                  integer NOT NULL DEFAULT 0,   -- 1 = best in its theme
    run_id                text,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS practices_theme ON practices (theme_id, rank);
CREATE INDEX IF NOT EXISTS practices_score ON practices (score DESC);

-- The serialised ThemeModel per scope: what incremental assignment uses and
-- what the next re-mine passes as `previous` so theme ids stay stable.
CREATE TABLE IF NOT EXISTS theme_models (
    scope      text PRIMARY KEY,
    model      jsonb NOT NULL,
    run_id     text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- ThemeMining runs: progress mirrors the workflow query, changes the result.
CREATE TABLE IF NOT EXISTS mining_runs (
    id          text PRIMARY KEY,
    scope       text NOT NULL DEFAULT 'all',
    trigger     text NOT NULL DEFAULT 'api',      -- api | schedule | cli
    status      text NOT NULL DEFAULT 'running',  -- running | completed | failed
    stage       text NOT NULL DEFAULT 'queued',   -- queued | loading | encoding | clustering | saving | done
    done        integer NOT NULL DEFAULT 0,
    total       integer NOT NULL DEFAULT 0,
    changes     jsonb NOT NULL DEFAULT '[]',
    theme_count integer,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS mining_runs_started ON mining_runs (started_at DESC);
