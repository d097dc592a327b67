-- Issue 12: the theme counters honour facilitators-only notes.
--
-- theme_facets (0005) counted every statement, so a theme's size, cycles,
-- organisations, languages and dates in GET /v1/themes told an analyst or a
-- partner key that statements of facilitators-only notes existed (a theme could
-- even be listed only because of them). The counters now carry a `hidden`
-- class: the statements of facilitators-only notes are counted apart, admin and
-- manager keys read both classes, every other key only `NOT hidden`. The read
-- stays the same few hundred rows whatever share of notes is hidden.
--
-- The class is state, not a delta: statements.note_hidden says whether the
-- statement's note is facilitators-only. It is set when a statement is written
-- (from its note, which is locked FOR SHARE so that a visibility change being
-- committed at the same moment is waited for, never missed), and rewritten for
-- a note's statements whenever the note row appears, disappears or changes
-- visibility (the NoteVisibilityChanged projector, a withdrawal, an erasure,
-- a projection rebuild's delete-and-insert). Those statement updates reach the
-- counters through 0005's statement triggers, which now fold the class in like
-- the other counted columns. A statement with no note row counts as visible,
-- as in peerlearn.readside.filters.hidden_notes_clause.
--
-- Lock order: a statement writer takes its notes' row locks before any counter
-- row; a visibility change holds its note's row, then the statements', then the
-- counters'.

ALTER TABLE statements ADD COLUMN IF NOT EXISTS note_hidden boolean NOT NULL DEFAULT false;

ALTER TABLE theme_facets ADD COLUMN IF NOT EXISTS hidden boolean NOT NULL DEFAULT false;
ALTER TABLE theme_facets DROP CONSTRAINT IF EXISTS theme_facets_pkey;
ALTER TABLE theme_facets
    ADD PRIMARY KEY (theme_id, programme_id, language, dim, value, hidden);

DO $$ BEGIN
    ALTER TYPE theme_facet_delta ADD ATTRIBUTE hidden boolean;
EXCEPTION WHEN duplicate_column THEN NULL;
END $$;

CREATE OR REPLACE FUNCTION theme_facets_change(deltas theme_facet_delta[]) RETURNS void
LANGUAGE sql AS $$
    WITH d AS (
        SELECT theme_id, programme_id, language, cycle_id, organisation_id, source_date, sgn,
               coalesce(hidden, false) AS hidden
        FROM unnest(deltas) WHERE theme_id IS NOT NULL
    ), e AS (
        SELECT theme_id, programme_id, language, 'n'::"char" AS dim, ''::text AS value,
               hidden, sgn
        FROM d
        UNION ALL
        SELECT theme_id, programme_id, language, 'c', cycle_id, hidden, sgn FROM d
        WHERE cycle_id IS NOT NULL
        UNION ALL
        SELECT theme_id, programme_id, language, 'o', organisation_id, hidden, sgn FROM d
        WHERE organisation_id IS NOT NULL
        UNION ALL
        SELECT theme_id, programme_id, language, 'd', to_char(source_date, 'YYYY-MM-DD'),
               hidden, sgn
        FROM d WHERE source_date IS NOT NULL
    )
    INSERT INTO theme_facets AS f (theme_id, programme_id, language, dim, value, hidden, n)
    SELECT theme_id, programme_id, language, dim, value, hidden, sum(sgn)::int FROM e
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(sgn) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6  -- one lock order for concurrent writers
    ON CONFLICT (theme_id, programme_id, language, dim, value, hidden)
    DO UPDATE SET n = f.n + EXCLUDED.n;
    DELETE FROM theme_facets WHERE n <= 0;  -- via theme_facets_empty: cheap when none
$$;

CREATE OR REPLACE FUNCTION theme_facets_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM theme_facets_change(ARRAY(
        SELECT ROW(theme_id, coalesce(programme_id, ''), language, cycle_id, organisation_id,
                   source_date, 1, note_hidden)::theme_facet_delta
        FROM new_rows WHERE theme_id IS NOT NULL));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION theme_facets_on_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM theme_facets_change(ARRAY(
        SELECT ROW(theme_id, coalesce(programme_id, ''), language, cycle_id, organisation_id,
                   source_date, -1, note_hidden)::theme_facet_delta
        FROM old_rows WHERE theme_id IS NOT NULL));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION theme_facets_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM theme_facets_change(ARRAY(
        SELECT ROW(n.theme_id, coalesce(n.programme_id, ''), n.language, n.cycle_id,
                   n.organisation_id, n.source_date, 1, n.note_hidden)::theme_facet_delta
        FROM new_rows n WHERE n.theme_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM old_rows o WHERE o.id = n.id
            AND (o.theme_id, o.programme_id, o.language, o.cycle_id, o.organisation_id,
                 o.source_date, o.note_hidden) IS NOT DISTINCT FROM (n.theme_id,
                 n.programme_id, n.language, n.cycle_id, n.organisation_id, n.source_date,
                 n.note_hidden))
        UNION ALL
        SELECT ROW(o.theme_id, coalesce(o.programme_id, ''), o.language, o.cycle_id,
                   o.organisation_id, o.source_date, -1, o.note_hidden)::theme_facet_delta
        FROM old_rows o WHERE o.theme_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM new_rows n WHERE n.id = o.id
            AND (o.theme_id, o.programme_id, o.language, o.cycle_id, o.organisation_id,
                 o.source_date, o.note_hidden) IS NOT DISTINCT FROM (n.theme_id,
                 n.programme_id, n.language, n.cycle_id, n.organisation_id, n.source_date,
                 n.note_hidden))));
    RETURN NULL;
END;
$$;

-- A statement being written takes its class from its note (row-locked: a
-- concurrent visibility change is committed first, or waits for this writer
-- and then sees its statements).
CREATE OR REPLACE FUNCTION statements_note_hidden() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.note_hidden := coalesce(
        (SELECT n.visibility = 'facilitators' FROM notes n WHERE n.id = NEW.note_id FOR SHARE),
        false);
    RETURN NEW;
END;
$$;

-- Note rows that appear, disappear or change visibility re-class their
-- statements (only those whose class differs). Statement-level, so a
-- projection rebuild's delete-and-insert of every note is two UPDATEs, and an
-- update that changes no visibility (note counts, theme ids) only looks its
-- statements up (statements_note index) and writes nothing.
CREATE OR REPLACE FUNCTION notes_reclass_statements() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE statements s SET note_hidden = false FROM old_rows o
        WHERE s.note_id = o.id AND s.note_hidden;
    ELSE  -- INSERT, UPDATE: the class the note has now, whatever it had
        UPDATE statements s SET note_hidden = (n.visibility = 'facilitators') FROM new_rows n
        WHERE s.note_id = n.id AND s.note_hidden <> (n.visibility = 'facilitators');
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION notes_truncated_reclass() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE statements SET note_hidden = false WHERE note_hidden;
    RETURN NULL;
END;
$$;

-- No writer may slip between the backfill and the triggers.
LOCK TABLE notes IN SHARE ROW EXCLUSIVE MODE;
LOCK TABLE statements IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS statements_note_hidden_ins ON statements;
CREATE TRIGGER statements_note_hidden_ins BEFORE INSERT OR UPDATE OF note_id ON statements
    FOR EACH ROW EXECUTE FUNCTION statements_note_hidden();

DROP TRIGGER IF EXISTS notes_reclass_ins ON notes;
DROP TRIGGER IF EXISTS notes_reclass_upd ON notes;
DROP TRIGGER IF EXISTS notes_reclass_del ON notes;
DROP TRIGGER IF EXISTS notes_reclass_trunc ON notes;
CREATE TRIGGER notes_reclass_ins AFTER INSERT ON notes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION notes_reclass_statements();
CREATE TRIGGER notes_reclass_upd AFTER UPDATE ON notes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION notes_reclass_statements();
CREATE TRIGGER notes_reclass_del AFTER DELETE ON notes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION notes_reclass_statements();
CREATE TRIGGER notes_reclass_trunc AFTER TRUNCATE ON notes
    FOR EACH STATEMENT EXECUTE FUNCTION notes_truncated_reclass();

-- Backfill: classes from the notes there now, then the counters from scratch.
UPDATE statements s SET note_hidden = true FROM notes n
WHERE n.id = s.note_id AND n.visibility = 'facilitators' AND NOT s.note_hidden;
DELETE FROM theme_facets;
SELECT theme_facets_change(ARRAY(
    SELECT ROW(theme_id, coalesce(programme_id, ''), language, cycle_id, organisation_id,
               source_date, 1, note_hidden)::theme_facet_delta
    FROM statements WHERE theme_id IS NOT NULL));
ANALYZE theme_facets;
