-- Notes uploaded as documents keep their original file; past programmes can be imported.
--
-- Neither table is a projection of the event log: an uploaded file is not an
-- event (the note's text is, in NotesSubmitted), and an import records how a
-- batch of events came in. `peerlearn projections rebuild` leaves both alone.

-- Original files, content-addressed: the same file uploaded twice (or for two
-- notes) is stored once. Erasure deletes the row once no note links to it.
CREATE TABLE document_blobs (
    sha256     text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    format     text        NOT NULL,  -- docx | odt | pdf | markdown | text | html | eml
    media_type text        NOT NULL,
    size       integer     NOT NULL CHECK (size >= 0),
    data       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which note came from which file (and under what name it was uploaded).
-- No foreign key to notes: the notes read model is rebuilt by replaying the log.
CREATE TABLE note_originals (
    note_id    text        PRIMARY KEY,
    cycle_id   text        NOT NULL,
    sha256     text        NOT NULL REFERENCES document_blobs (sha256),
    filename   text        NOT NULL,
    pages      integer,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX note_originals_sha256 ON note_originals (sha256);

-- One row per import of a file of past notes (id = sha256 of the file's
-- normalised lines, so re-importing the same content finds the same row).
CREATE TABLE imports (
    id            text        PRIMARY KEY,
    status        text        NOT NULL,  -- written | mining | done | failed
    lines         integer     NOT NULL,
    programme_ids jsonb       NOT NULL DEFAULT '[]',
    created       jsonb       NOT NULL DEFAULT '{}',  -- counts of what the last run wrote
    mining_run_id text,
    submitted_by  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
