-- Issue 12: a note names the person who wrote it (optional), so that "erase
-- everything Anna Berg wrote" is possible. The name is personal data: in the
-- event log it is sealed with the note's key like the text
-- (``author_person_sealed``); the read model keeps it for the few who may
-- read the note, and ``note_keys`` keeps its matching form
-- (peerlearn.privacy.person_key) so that an erasure finds every note of the
-- person, also notes only the log (or a Temporal history) still holds.
ALTER TABLE notes ADD COLUMN IF NOT EXISTS author_person text;
ALTER TABLE note_keys ADD COLUMN IF NOT EXISTS author_person_key text;
CREATE INDEX IF NOT EXISTS note_keys_person ON note_keys (author_person_key)
    WHERE author_person_key IS NOT NULL;

-- Erasures may now target a person; their record names the person only by a
-- digest (target = 'person:' + sha256 of the matching form, 16 hex digits).
ALTER TABLE erasures DROP CONSTRAINT IF EXISTS erasures_target_kind_check;
ALTER TABLE erasures ADD CONSTRAINT erasures_target_kind_check
    CHECK (target_kind IN ('note', 'organisation', 'person'));
