-- An idempotency key names one note (issue 10). The API claims the key
-- before it sends the note to the cycle workflow: the first request inserts
-- the claim, a concurrent or later one with the same key compares with it,
-- so two simultaneous requests with one key and different notes can no
-- longer both pass (one is 409). The text and the author's name are kept
-- only as sha256 digests; a claim goes with its note on erasure
-- (peerlearn.privacy.erase) and with a refused submission.
CREATE TABLE IF NOT EXISTS note_claims (
    cycle_id        text        NOT NULL,
    client_key      text        NOT NULL,
    fields          jsonb       NOT NULL,  -- meeting_id, author_organisation, language,
                                           -- format in clear; text, author_person digests
    note_id         text        NOT NULL,  -- the id the first request proposed
    organisation_id text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cycle_id, client_key)
);
CREATE INDEX IF NOT EXISTS note_claims_org ON note_claims (organisation_id);
CREATE INDEX IF NOT EXISTS note_claims_note ON note_claims (note_id);
