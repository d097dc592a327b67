-- Issue 12, right to erasure for notes written before 0015: their events
-- (NotesSubmitted, NoteCorrected) still hold the text in clear in
-- `payload->>'text'`, so destroying the note's key would not erase it.
-- peerlearn/legacy_seal.py seals them in place, once, and this migration
-- opens exactly that door in the append-only trigger and no other:
--
--   an UPDATE is allowed only when the row is a NotesSubmitted or
--   NoteCorrected event, its payload loses the key `text` and gains the key
--   `text_sealed` (a string), and everything else is identical: every other
--   payload key and value, and every other column of the row (type, stream,
--   version, positions, timestamps, idempotency key, and any column a later
--   migration adds: the row is compared as a whole, less `payload`).
--
-- Every DELETE, and every other UPDATE, is still refused with the message
-- of 0002. The type names are the values of peerlearn.events.EventType
-- (NOTES_SUBMITTED, NOTE_CORRECTED).
CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.type IN ('NotesSubmitted', 'NoteCorrected')
       AND OLD.payload ? 'text'
       AND NOT OLD.payload ? 'text_sealed'
       AND NOT NEW.payload ? 'text'
       AND NEW.payload ? 'text_sealed'
       AND jsonb_typeof(NEW.payload -> 'text_sealed') = 'string'
       AND (NEW.payload - 'text_sealed') = (OLD.payload - 'text')
       AND (to_jsonb(NEW) - 'payload') = (to_jsonb(OLD) - 'payload')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'events is append-only (% refused)', TG_OP;
END $$;

-- The legacy events still to seal: empty once sealed (and on any
-- installation that started at 0015 or later), so the check at every worker
-- start costs an index probe instead of a scan of every note event.
CREATE INDEX IF NOT EXISTS events_legacy_clear_text ON events (global_position)
    WHERE type IN ('NotesSubmitted', 'NoteCorrected') AND payload ? 'text';
