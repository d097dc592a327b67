-- Pre-aggregated theme statistics for GET /v1/themes (50 ms p95 budget).
--
-- Counting distinct cycles/organisations/programmes over every statement on each
-- request costs tens of ms at 10k statements. theme_facets keeps, per theme,
-- programme and language, additive counters: dim 'n' = statements (value ''),
-- 'c' = statements per cycle id, 'o' = per organisation id, 'd' = per source
-- date (ISO text). Distinct counts are then count(DISTINCT value) over a few
-- hundred small rows, and they stay exact whatever grant or programme filters
-- the rows, because a cycle or organisation shared by two programmes is one
-- value. Counters (not recomputed sets) make maintenance commutative, so
-- concurrent writers need no lock beyond the row locks of the upsert.
--
-- Statement-level triggers with transition tables maintain it inside the
-- writer's transaction for every INSERT / UPDATE / DELETE on statements
-- (note ingestion, incremental assignment, a re-mine's bulk UPDATE, test seeds),
-- so it is never out of date and no writer has to remember it.
CREATE TABLE IF NOT EXISTS theme_facets (
    theme_id     text COLLATE "C" NOT NULL,
    programme_id text COLLATE "C" NOT NULL,  -- '' where the statement has none
    language     text COLLATE "C" NOT NULL,
    dim          "char" NOT NULL,            -- n | c | o | d
    value        text COLLATE "C" NOT NULL,  -- ids and dates: byte order is enough
    n            integer NOT NULL,
    PRIMARY KEY (theme_id, programme_id, language, dim, value)
);
CREATE INDEX IF NOT EXISTS theme_facets_programme ON theme_facets (programme_id);
CREATE INDEX IF NOT EXISTS theme_facets_empty ON theme_facets (theme_id) WHERE n <= 0;

-- One change set: +1 per new row, -1 per old row (only the rows whose counted
-- columns changed), folded into counters; rows that reach 0 are removed.
DO $$ BEGIN
    CREATE TYPE theme_facet_delta AS (
        theme_id text, programme_id text, language text, cycle_id text,
        organisation_id text, source_date date, sgn integer
    );
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE OR REPLACE FUNCTION theme_facets_change(deltas theme_facet_delta[]) RETURNS void
LANGUAGE sql AS $$
    WITH d AS (SELECT * FROM unnest(deltas) WHERE theme_id IS NOT NULL), e AS (
        SELECT theme_id, programme_id, language, 'n'::"char" AS dim, ''::text AS value, sgn
        FROM d
        UNION ALL
        SELECT theme_id, programme_id, language, 'c', cycle_id, sgn FROM d
        WHERE cycle_id IS NOT NULL
        UNION ALL
        SELECT theme_id, programme_id, language, 'o', organisation_id, sgn FROM d
        WHERE organisation_id IS NOT NULL
        UNION ALL
        SELECT theme_id, programme_id, language, 'd', to_char(source_date, 'YYYY-MM-DD'), sgn
        FROM d WHERE source_date IS NOT NULL
    )
    INSERT INTO theme_facets AS f (theme_id, programme_id, language, dim, value, n)
    SELECT theme_id, programme_id, language, dim, value, sum(sgn)::int FROM e
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(sgn) <> 0
    ORDER BY 1, 2, 3, 4, 5  -- one lock order for concurrent writers
    ON CONFLICT (theme_id, programme_id, language, dim, value)
    DO UPDATE SET n = f.n + EXCLUDED.n;
    DELETE FROM theme_facets WHERE n <= 0;  -- via theme_facets_empty: cheap when none
$$;

-- Transition tables allow one event per trigger, hence three small functions.
CREATE OR REPLACE FUNCTION theme_facets_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM theme_facets_change(ARRAY(
        SELECT ROW(theme_id, coalesce(programme_id, ''), language, cycle_id, organisation_id,
                   source_date, 1)::theme_facet_delta
        FROM new_rows WHERE theme_id IS NOT NULL));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION theme_facets_on_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM theme_facets_change(ARRAY(
        SELECT ROW(theme_id, coalesce(programme_id, ''), language, cycle_id, organisation_id,
                   source_date, -1)::theme_facet_delta
        FROM old_rows WHERE theme_id IS NOT NULL));
    RETURN NULL;
END;
$$;

-- Updates that leave the counted columns alone (map coordinates, text, lemmas,
-- a re-mine keeping a statement's theme) change nothing.
CREATE OR REPLACE FUNCTION theme_facets_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM theme_facets_change(ARRAY(
        SELECT ROW(n.theme_id, coalesce(n.programme_id, ''), n.language, n.cycle_id,
                   n.organisation_id, n.source_date, 1)::theme_facet_delta
        FROM new_rows n WHERE n.theme_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM old_rows o WHERE o.id = n.id
            AND (o.theme_id, o.programme_id, o.language, o.cycle_id, o.organisation_id,
                 o.source_date) IS NOT DISTINCT FROM (n.theme_id, n.programme_id, n.language,
                 n.cycle_id, n.organisation_id, n.source_date))
        UNION ALL
        SELECT ROW(o.theme_id, coalesce(o.programme_id, ''), o.language, o.cycle_id,
                   o.organisation_id, o.source_date, -1)::theme_facet_delta
        FROM old_rows o WHERE o.theme_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM new_rows n WHERE n.id = o.id
            AND (o.theme_id, o.programme_id, o.language, o.cycle_id, o.organisation_id,
                 o.source_date) IS NOT DISTINCT FROM (n.theme_id, n.programme_id, n.language,
                 n.cycle_id, n.organisation_id, n.source_date))));
    RETURN NULL;
END;
$$;

-- No writer may slip between the backfill and the triggers.
LOCK TABLE statements IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS theme_facets_ins ON statements;
DROP TRIGGER IF EXISTS theme_facets_upd ON statements;
DROP TRIGGER IF EXISTS theme_facets_del ON statements;
CREATE TRIGGER theme_facets_ins AFTER INSERT ON statements
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION theme_facets_on_insert();
CREATE TRIGGER theme_facets_upd AFTER UPDATE ON statements
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION theme_facets_on_update();
CREATE TRIGGER theme_facets_del AFTER DELETE ON statements
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION theme_facets_on_delete();

-- Backfill from the statements already there.
DELETE FROM theme_facets;
SELECT theme_facets_change(ARRAY(
    SELECT ROW(theme_id, coalesce(programme_id, ''), language, cycle_id, organisation_id,
               source_date, 1)::theme_facet_delta
    FROM statements WHERE theme_id IS NOT NULL));
ANALYZE theme_facets;
