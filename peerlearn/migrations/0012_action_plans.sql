-- Issue 13, action plans: an action item answers a recommendation, has an owner,
-- a due date, a status (open, in_progress, done, dropped) and progress notes.
-- Still a projection (ActionItemAdded / ActionItemUpdated on the cycle's stream,
-- besides the wrap-up's items).

ALTER TABLE action_items ADD COLUMN IF NOT EXISTS recommendation jsonb;
ALTER TABLE action_items ADD COLUMN IF NOT EXISTS progress jsonb NOT NULL DEFAULT '[]';
ALTER TABLE action_items ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE action_items ADD COLUMN IF NOT EXISTS updated_at timestamptz;
