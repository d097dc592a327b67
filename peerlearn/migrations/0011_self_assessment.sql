-- Issue 13, self-assessment: a programme's questionnaire and the hosts' answers.
--
-- Both are projections (rebuilt from the log): the questionnaire comes with
-- ProgrammeCreated/ProgrammeUpdated, the answers with SelfAssessmentSubmitted
-- on the cycle's stream (a later submission for the same meeting replaces it).

ALTER TABLE programmes
    ADD COLUMN IF NOT EXISTS self_assessment_questions jsonb NOT NULL DEFAULT '[]';

CREATE TABLE self_assessments (
    cycle_id     text        NOT NULL,
    meeting_id   text        NOT NULL,
    host         text        NOT NULL,
    language     text        NOT NULL,
    answers      jsonb       NOT NULL,
    submitted_by text,
    submitted_at timestamptz NOT NULL,
    version      integer     NOT NULL,  -- the event's version: which submission this is
    PRIMARY KEY (cycle_id, meeting_id)
);
