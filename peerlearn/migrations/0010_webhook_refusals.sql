-- Webhook deliveries refused by the SSRF rule (issue 10, peerlearn/outbound.py):
-- the target resolved to an address the worker must not post to. A refused
-- row is recorded once, with the reason in last_error, and never retried
-- (retrying cannot make a metadata-service address acceptable).
ALTER TABLE outbox_deliveries ADD COLUMN IF NOT EXISTS refused_at timestamptz;
