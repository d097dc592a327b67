-- Issue 12, partners control their data: a note's visibility, its corrections
-- and withdrawal, and erasure by crypto-shredding.
--
-- Visibility: 'facilitators' (only admin/manager keys of the grant read its
-- statements), 'programme' (default: the programme's grant), 'public'.
ALTER TABLE notes ADD COLUMN IF NOT EXISTS visibility text NOT NULL DEFAULT 'programme'
    CHECK (visibility IN ('facilitators', 'programme', 'public'));
ALTER TABLE notes ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1;
ALTER TABLE notes ADD COLUMN IF NOT EXISTS corrected_at timestamptz;
CREATE INDEX IF NOT EXISTS notes_facilitators ON notes (id) WHERE visibility = 'facilitators';

-- One AES-256-GCM key per note (with its author organisation): note texts in
-- the event log (NotesSubmitted, NoteCorrected) are stored encrypted with it.
-- Erasing a note deletes its key, erasing an organisation deletes all of its
-- keys, so every copy of the text in the log (and in any backup of the log)
-- becomes unreadable while the events themselves, and the streams' gap-free
-- versions, stay. Not a projection: rebuilds keep it.
CREATE TABLE IF NOT EXISTS note_keys (
    note_id         text        PRIMARY KEY,
    organisation_id text        NOT NULL,
    key             bytea       NOT NULL CHECK (length(key) = 32),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS note_keys_org ON note_keys (organisation_id);

-- What was erased, when and on whose request (no text, ever).
CREATE TABLE IF NOT EXISTS erasures (
    id              text        PRIMARY KEY,
    target_kind     text        NOT NULL CHECK (target_kind IN ('note', 'organisation')),
    target          text        NOT NULL,
    note_ids        text[]      NOT NULL DEFAULT '{}',
    requested_by    text,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
