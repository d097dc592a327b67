-- Theme labels per programme (issue 10): what a key can read, labels included,
-- is built only from statements that key may see.
--
-- themes.label / themes.keyphrases are computed over every statement of the
-- model's scope, so a theme of the global model can carry a word only
-- programme B wrote. theme_labels holds, per theme and programme, the label and
-- keyphrases computed from that programme's statements alone (written by the
-- mining store after a re-mine, and when a note brings a programme into a
-- theme). A caller restricted to some programmes reads theme_label_for /
-- theme_keyphrases_for: the text of the granted programme with most statements
-- in the theme, or NULL (show the theme id) when none of them has one.
CREATE TABLE IF NOT EXISTS theme_labels (
    theme_id       text NOT NULL,
    programme_id   text NOT NULL,
    label          text NOT NULL,
    label_language text NOT NULL DEFAULT 'en',
    keyphrases     jsonb NOT NULL DEFAULT '[]',
    size           integer NOT NULL DEFAULT 0,  -- the programme's statements in the theme
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (theme_id, programme_id)
);
CREATE INDEX IF NOT EXISTS theme_labels_programme ON theme_labels (programme_id);

-- p_programmes NULL: an unrestricted caller (admin, or a grant of every
-- programme), who may read the theme's own label.
CREATE OR REPLACE FUNCTION theme_label_for(p_theme text, p_programmes text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_programmes IS NULL THEN (SELECT label FROM themes WHERE id = p_theme)
    ELSE (SELECT l.label FROM theme_labels l
          WHERE l.theme_id = p_theme AND l.programme_id = ANY(p_programmes)
          ORDER BY l.size DESC, l.programme_id LIMIT 1)
    END
$$;

CREATE OR REPLACE FUNCTION theme_keyphrases_for(p_theme text, p_programmes text[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_programmes IS NULL THEN (SELECT keyphrases FROM themes WHERE id = p_theme)
    ELSE coalesce((SELECT l.keyphrases FROM theme_labels l
          WHERE l.theme_id = p_theme AND l.programme_id = ANY(p_programmes)
          ORDER BY l.size DESC, l.programme_id LIMIT 1), '[]'::jsonb)
    END
$$;
