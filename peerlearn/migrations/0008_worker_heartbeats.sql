-- Liveness of each worker process, for GET /health (issue 10, "Availability").
-- Temporal's poller list keeps a frozen worker (SIGSTOP, a wedged event loop)
-- for up to ~90 s; each worker therefore upserts its own row every few seconds
-- from its event loop, and /health calls a worker whose row has gone stale hung.
-- A worker deletes its row when it stops gracefully; a worker starting on the
-- same host deletes the rows of that host's dead pids.
CREATE TABLE worker_heartbeats (
    identity    text        PRIMARY KEY,
    task_queue  text        NOT NULL,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    beat_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_heartbeats_queue ON worker_heartbeats (task_queue, beat_at);
