-- Access control (issue 6): API keys and per-programme webhook secrets.
--
-- A key is shown once at creation; only sha256(secret) is kept. Keys are
-- 32 random bytes, so a fast hash is enough (no password-style stretching).
-- programmes is the grant (ignored for admin keys); organisation binds a
-- partner key to the one organisation whose notes it may submit.
CREATE TABLE IF NOT EXISTS api_keys (
    id          text PRIMARY KEY,
    prefix      text NOT NULL,
    hash        bytea NOT NULL,
    name        text NOT NULL DEFAULT '',
    role        text NOT NULL CHECK (role IN ('admin', 'manager', 'analyst', 'partner')),
    programmes  text[] NOT NULL DEFAULT '{}',
    organisation text,
    created     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used   timestamptz,
    CHECK (role <> 'partner' OR organisation IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS api_keys_programmes ON api_keys USING gin (programmes);

-- One signing secret per programme for webhook deliveries (created on first use).
CREATE TABLE IF NOT EXISTS webhook_secrets (
    programme_id text PRIMARY KEY,
    secret       text NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz
);
