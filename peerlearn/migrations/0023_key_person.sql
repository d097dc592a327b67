-- Issue 12: a partner key may belong to one named person. Notes sent with it
-- are signed by that person unless they say otherwise (the author_person of
-- migration 0020), so "erase everything Anna Berg wrote" finds what she
-- submitted from the browser without her typing her name each time.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS person text;
