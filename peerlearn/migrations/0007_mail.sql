-- E-mail (issue 13): per-recipient delivery state of outbox rows, and the
-- messages the embedded mail catcher received.
--
-- Neither table is a projection: both are operational state, never rebuilt.

-- One row per (outbox row, recipient address, meeting) that became an e-mail.
-- message_id is derived from those three, so a re-send after a crash between
-- the SMTP transaction and this row's update carries the same Message-ID.
CREATE TABLE mail_deliveries (
    outbox_id   text        NOT NULL,
    recipient   text        NOT NULL,
    meeting_id  text        NOT NULL DEFAULT '',
    message_id  text        NOT NULL,
    language    text        NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    sent_at     timestamptz,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, recipient, meeting_id)
);
CREATE INDEX mail_deliveries_message ON mail_deliveries (message_id);

-- Outbox rows whose e-mails have all been sent: later deliveries skip them
-- without planning their recipients again.
CREATE TABLE mail_outbox_done (
    outbox_id    text PRIMARY KEY,
    messages     integer     NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);

-- Every SMTP transaction the catcher accepted (one row per copy: a re-sent
-- message is a second row with the same message_id, which is how a reader
-- sees that receivers can deduplicate).
CREATE TABLE caught_mail (
    id          bigserial PRIMARY KEY,
    message_id  text,
    mail_from   text        NOT NULL,
    rcpt_to     jsonb       NOT NULL DEFAULT '[]',
    subject     text        NOT NULL DEFAULT '',
    raw         bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX caught_mail_message ON caught_mail (message_id, id);
CREATE INDEX caught_mail_received ON caught_mail (received_at DESC, id DESC);
