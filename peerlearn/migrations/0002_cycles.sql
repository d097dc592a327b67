-- Cycle engine: the append-only event log and the read models projected from it.
--
-- `events` is the source of truth. Every other table here except
-- `outbox_deliveries` is a projection: written only by peerlearn/eventstore.py
-- in the same transaction as the append, and rebuilt from the log by
-- `peerlearn projections rebuild`.

CREATE TABLE events (
    global_position bigserial PRIMARY KEY,
    stream_id       text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    type            text        NOT NULL,
    payload         jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    idempotency_key text        NOT NULL UNIQUE,
    UNIQUE (stream_id, version)
);
CREATE INDEX events_type ON events (type);

-- One row per stream: its head version, locked FOR UPDATE by each append so
-- versions are gap-free and ordered by commit.
CREATE TABLE event_streams (
    stream_id text PRIMARY KEY,
    version   integer NOT NULL DEFAULT 0
);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

-- ---- read models -----------------------------------------------------------

CREATE TABLE programmes (
    id           text PRIMARY KEY,
    name         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    time_zone    text        NOT NULL,
    webhook_url  text,
    partners     jsonb       NOT NULL DEFAULT '[]',
    facilitators jsonb       NOT NULL DEFAULT '[]',
    languages    jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      integer     NOT NULL
);

CREATE TABLE cycles (
    id            text PRIMARY KEY,
    programme_id  text        NOT NULL,
    workflow_id   text        NOT NULL,
    title         text        NOT NULL,
    phase         text        NOT NULL,
    status        text        NOT NULL,
    time_zone     text        NOT NULL,
    partners      jsonb       NOT NULL DEFAULT '[]',
    policies      jsonb       NOT NULL DEFAULT '{}',
    ends_at       timestamptz NOT NULL,
    cancel_reason text,
    report_id     text,
    follow_up_at  timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       integer     NOT NULL
);
CREATE INDEX cycles_programme ON cycles (programme_id, id);
CREATE INDEX cycles_status ON cycles (status, id);

CREATE TABLE meetings (
    cycle_id        text        NOT NULL,
    id              text        NOT NULL,
    kind            text        NOT NULL,
    title           text        NOT NULL DEFAULT '',
    host            text,
    format          text        NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    topics          jsonb       NOT NULL DEFAULT '[]',
    target_groups   jsonb       NOT NULL DEFAULT '[]',
    participants    jsonb       NOT NULL DEFAULT '[]',
    state           text        NOT NULL,
    held_at         timestamptz,
    notes_due_at    timestamptz,
    self_assessment_requested_at timestamptz,
    prep_sent_at    timestamptz,
    reminders_sent  integer     NOT NULL DEFAULT 0,
    window_closed_at timestamptz,
    escalated_at    timestamptz,
    note_count      integer     NOT NULL DEFAULT 0,
    theme_ids       jsonb       NOT NULL DEFAULT '[]',
    cancel_reason   text,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (cycle_id, id)
);

CREATE TABLE notes (
    id                  text PRIMARY KEY,
    cycle_id            text        NOT NULL,
    programme_id        text        NOT NULL,
    meeting_id          text        NOT NULL,
    author_organisation text        NOT NULL,
    language            text        NOT NULL,
    text                text        NOT NULL,
    format              text        NOT NULL DEFAULT 'text',
    client_key          text        NOT NULL,
    submitted_by        text,
    submitted_at        timestamptz NOT NULL,
    statement_count     integer,
    theme_ids           jsonb       NOT NULL DEFAULT '[]',
    UNIQUE (cycle_id, client_key)
);
CREATE INDEX notes_meeting ON notes (cycle_id, meeting_id, submitted_at);

-- Notifications to send. id = '<stream>:<version>' of the event that made it,
-- so it is the same after a rebuild and delivery state survives rebuilds.
CREATE TABLE outbox (
    id           text PRIMARY KEY,
    cycle_id     text        NOT NULL,
    programme_id text        NOT NULL,
    kind         text        NOT NULL,
    meeting_id   text,
    recipient    text        NOT NULL,
    subject      text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX outbox_cycle ON outbox (cycle_id, created_at);

-- Operational delivery state (not a projection; never rebuilt).
CREATE TABLE outbox_deliveries (
    outbox_id    text PRIMARY KEY,
    attempts     integer     NOT NULL DEFAULT 0,
    delivered_at timestamptz,
    last_status  integer,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reports (
    id           text PRIMARY KEY,
    cycle_id     text        NOT NULL UNIQUE,
    programme_id text        NOT NULL,
    kind         text        NOT NULL,
    content      jsonb       NOT NULL,
    markdown     text        NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE action_items (
    cycle_id   text        NOT NULL,
    id         text        NOT NULL,
    owner      text        NOT NULL,
    what       text        NOT NULL,
    due_at     timestamptz,
    status     text        NOT NULL DEFAULT 'open',
    meeting_id text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (cycle_id, id)
);
