-- Liveness of verification, outside the event log (not a projection, never replayed):
-- who is hashing an upload now (a lease: a verifier that dies or freezes loses it when it
-- expires) and when the sweeper last looked at the upload (it looks at the least recently
-- checked first, so every pending upload gets its turn).
CREATE TABLE upload_checks (
    upload_id        uuid PRIMARY KEY,
    holder           text,
    lease_expires_at timestamptz,
    checked_at       timestamptz
);

-- Small named values the sweeper keeps between runs (e.g. where its blob scan stopped).
CREATE TABLE sweeper_state (
    name  text PRIMARY KEY,
    value text NOT NULL
);
