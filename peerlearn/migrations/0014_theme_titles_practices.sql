-- Readable titles, one practice per idea, English glosses (issue 11 items 3-5).
--
-- themes.title / themes.titles: the miner's short noun-phrase title (English
-- when the theme has English statements) and one title per language
-- (nlp.types.ThemeSummary.title/titles). theme_labels.titles holds the titles
-- per language computed from one programme's statements (the label there is
-- already that programme's title), so a restricted key reads titles through
-- theme_titles_for exactly as it reads labels through theme_label_for (0009).
ALTER TABLE themes ADD COLUMN IF NOT EXISTS title text;
ALTER TABLE themes ADD COLUMN IF NOT EXISTS titles jsonb NOT NULL DEFAULT '{}';
ALTER TABLE theme_labels ADD COLUMN IF NOT EXISTS titles jsonb NOT NULL DEFAULT '{}';

CREATE OR REPLACE FUNCTION theme_titles_for(p_theme text, p_programmes text[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_programmes IS NULL THEN (SELECT titles FROM themes WHERE id = p_theme)
    ELSE coalesce((SELECT l.titles FROM theme_labels l
          WHERE l.theme_id = p_theme AND l.programme_id = ANY(p_programmes)
          ORDER BY l.size DESC, l.programme_id LIMIT 1), '{}'::jsonb)
    END
$$;

-- One idea, one practice (nlp.practices.group_practices): the practice
-- statements of a theme that say the same thing in any language form one row.
-- Written by the mining store after each re-mine and whenever new statements
-- enter a theme. Members are stored, not counts: the read side recounts
-- support and picks wordings over the members the caller may see.
-- wording_ids: language -> the member nearest the idea's centre in it.
CREATE TABLE IF NOT EXISTS theme_practices (
    id            text PRIMARY KEY,          -- 'P' + 12 hex of the sorted member ids (stable)
    theme_id      text NOT NULL,
    kind          text NOT NULL,
    statement_ids text[] NOT NULL,
    wording_ids   jsonb NOT NULL DEFAULT '{}',
    score         double precision NOT NULL DEFAULT 0,
    rank          integer NOT NULL DEFAULT 0,
    run_id        text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS theme_practices_theme ON theme_practices (theme_id, rank);

-- English glosses (nlp.glosses): for a non-English statement, the English
-- statements of its theme that say the most similar thing (language-debiased
-- cosine >= nlp.glosses.GLOSS_SIMILARITY), best first. Several are kept so
-- the read side can show the best one the caller may see.
CREATE TABLE IF NOT EXISTS statement_glosses (
    statement_id         text NOT NULL,
    rank                 integer NOT NULL,
    english_statement_id text NOT NULL,
    similarity           real NOT NULL,
    theme_id             text NOT NULL,
    PRIMARY KEY (statement_id, rank)
);
CREATE INDEX IF NOT EXISTS statement_glosses_theme ON statement_glosses (theme_id);
