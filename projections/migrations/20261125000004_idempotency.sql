-- Idempotency-Key store of the HTTP gateway: the first answer to a command request, replayed
-- to retries with the same key (per principal) and the same request fingerprint.
-- A row with status NULL is a first attempt still in flight; started_at identifies its owner.
CREATE TABLE idempotency_keys (
    principal   text        NOT NULL,
    key         text        NOT NULL,
    -- sha256 of method, path and canonical JSON body
    fingerprint bytea       NOT NULL,
    status      smallint,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    body        bytea,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
