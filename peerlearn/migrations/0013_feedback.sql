-- Issue 13, feedback to the host after a site visit.
--
-- feedback_summaries is operational (like mail_deliveries): the peers'
-- statements as compiled ONCE when the feedback was first delivered, so every
-- re-send and every later read shows the same summary even after re-mining.
-- feedback_acknowledgements is a projection of FeedbackAcknowledged.

CREATE TABLE feedback_summaries (
    cycle_id    text        NOT NULL,
    meeting_id  text        NOT NULL,
    host        text        NOT NULL,
    outbox_id   text        NOT NULL,
    items       jsonb       NOT NULL,
    compiled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cycle_id, meeting_id)
);

CREATE TABLE feedback_acknowledgements (
    cycle_id        text        NOT NULL,
    meeting_id      text        NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz NOT NULL,
    note            text,
    PRIMARY KEY (cycle_id, meeting_id)
);
