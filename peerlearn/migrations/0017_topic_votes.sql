-- Issue 13, topic voting: the manager proposes topics for a meeting, each
-- partner organisation votes for one (changeable until the preparation pack
-- goes out), and the winners become the meeting's focus topics.
--
-- All three are projections of cycle-stream events (TopicsProposed,
-- TopicVoted, FocusTopicsSet; PreparationPackSent freezes the vote), rebuilt
-- from the log like every other read model.

CREATE TABLE meeting_topic_proposals (
    cycle_id    text        NOT NULL,
    meeting_id  text        NOT NULL,
    topics      jsonb       NOT NULL,
    proposed_by text,
    proposed_at timestamptz NOT NULL,
    PRIMARY KEY (cycle_id, meeting_id)
);

CREATE TABLE topic_votes (
    cycle_id     text        NOT NULL,
    meeting_id   text        NOT NULL,
    organisation text        NOT NULL,
    topic        text        NOT NULL,
    voted_by     text,
    voted_at     timestamptz NOT NULL,
    PRIMARY KEY (cycle_id, meeting_id, organisation)
);

CREATE TABLE meeting_focus_topics (
    cycle_id   text        NOT NULL,
    meeting_id text        NOT NULL,
    topics     jsonb       NOT NULL,
    counts     jsonb       NOT NULL,   -- {topic: votes} when the focus was set
    source     text        NOT NULL,   -- 'manager' (FocusTopicsSet) | 'votes' (frozen by the prep pack)
    set_at     timestamptz NOT NULL,
    PRIMARY KEY (cycle_id, meeting_id)
);
