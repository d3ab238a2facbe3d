-- Current-state tables: projections of the event log (slipway/projections.py).
-- Every row is written only by a projector, from an event, in the event's transaction;
-- `slipway replay` rebuilds them all from `events` and `slipway verify` compares.
-- No foreign keys: the log orders everything, and replay loads tables independently.

CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    owner           text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('slide', 'telemetry')),
    filename        text NOT NULL,
    content_type    text NOT NULL,
    size            bigint NOT NULL CHECK (size > 0),
    declared_sha256 bytea,
    method          text NOT NULL CHECK (method IN ('PUT', 'MULTIPART')),
    object_key      text NOT NULL,
    multipart_id    text,
    part_size       bigint,
    part_count      integer,
    checksum_parts  boolean NOT NULL,
    expires_at      timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
    sha256          bytea,
    blake3          bytea,
    deduplicated    boolean NOT NULL,
    error_code      text,
    error_message   text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_sequence   bigint NOT NULL
);
CREATE INDEX uploads_pending ON uploads (expires_at) WHERE state = 'pending';
CREATE INDEX uploads_owner ON uploads (owner, created_at DESC);
CREATE INDEX uploads_sha256 ON uploads (sha256) WHERE state = 'ready';

-- Content-addressed objects: one per distinct content, however many uploads point at it.
CREATE TABLE blobs (
    sha256        bytea PRIMARY KEY,
    blake3        bytea NOT NULL,
    size          bigint NOT NULL,
    object_key    text NOT NULL,
    content_type  text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL
);

-- The job queue (docs/jobs.md): claimed with FOR UPDATE SKIP LOCKED; the lease is part
-- of the claim, so a job whose worker died becomes claimable again by the same query.
CREATE TABLE jobs (
    id                 uuid PRIMARY KEY,
    type               text NOT NULL,
    owner              text NOT NULL,
    upload_id          uuid,
    status             text NOT NULL
        CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    payload            jsonb NOT NULL,
    attempt_count      integer NOT NULL,
    max_attempts       integer NOT NULL CHECK (max_attempts > 0),
    locked_at          timestamptz,
    locked_by          text,
    lease_expires_at   timestamptz,
    last_error_code    text,
    last_error_message text,
    next_retry_at      timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    started_at         timestamptz,
    finished_at        timestamptz,
    last_sequence      bigint NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (type, created_at) WHERE status IN ('QUEUED', 'RUNNING');
CREATE INDEX jobs_upload ON jobs (upload_id, created_at);

-- A slide's Deep Zoom pyramid, written when its tile job succeeds.
CREATE TABLE slides (
    upload_id     uuid PRIMARY KEY,
    job_id        uuid NOT NULL,
    width         integer NOT NULL,
    height        integer NOT NULL,
    tile_size     integer NOT NULL,
    overlap       integer NOT NULL,
    format        text NOT NULL,
    levels        integer NOT NULL,
    tile_count    integer NOT NULL,
    tiles_prefix  text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL
);

CREATE TABLE telemetry_sessions (
    id              uuid PRIMARY KEY,
    owner           text NOT NULL,
    upload_id       uuid NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    start_time_utc  timestamptz NOT NULL,
    end_time_utc    timestamptz NOT NULL,
    failure_code    text,
    failure_message text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_sequence   bigint NOT NULL
);
CREATE INDEX telemetry_sessions_owner ON telemetry_sessions (owner, created_at DESC, id DESC);

CREATE TABLE telemetry_runs (
    id            uuid PRIMARY KEY,
    session_id    uuid NOT NULL,
    job_id        uuid NOT NULL,
    status        text NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed')),
    error_code    text,
    error_detail  text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL
);
CREATE INDEX telemetry_runs_session ON telemetry_runs (session_id);

CREATE TABLE telemetry_streams (
    session_id    uuid NOT NULL,
    name          text NOT NULL,
    rows          bigint NOT NULL,
    object_key    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL,
    PRIMARY KEY (session_id, name)
);

CREATE TABLE line_scans (
    id            uuid PRIMARY KEY,
    owner         text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL
);

CREATE TABLE line_scan_tiles (
    scan_id         uuid NOT NULL,
    tile_id         uuid NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
    attempts        integer NOT NULL,
    last_error      text,
    last_attempt_at timestamptz NOT NULL,
    sha256          bytea,
    size            bigint,
    object_key      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_sequence   bigint NOT NULL,
    PRIMARY KEY (scan_id, tile_id)
);
