-- Read models folded from the event log, and the projector offsets stored with them.

-- Next offset to read per projection and events partition, written in the same transaction
-- as the read-model rows: the truth for where a projector resumes.
CREATE TABLE projection_offsets (
    projection  text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

CREATE TABLE accounts (
    account_id      uuid        PRIMARY KEY,
    owner_id        text        NOT NULL,
    currency        char(3)     NOT NULL,
    balance         bigint      NOT NULL,
    overdraft_limit bigint      NOT NULL,
    status          text        NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    version         bigint      NOT NULL,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX accounts_owner_idx ON accounts (owner_id, account_id);
CREATE INDEX accounts_status_idx ON accounts (status, account_id);

-- One line per balance change.
CREATE TABLE account_transactions (
    account_id    uuid        NOT NULL,
    sequence      bigint      NOT NULL,
    kind          text        NOT NULL,
    amount        bigint      NOT NULL,
    balance_after bigint      NOT NULL,
    reference     text,
    transfer_id   uuid,
    event_id      uuid        NOT NULL,
    occurred_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, sequence)
);
CREATE INDEX account_transactions_transfer_idx ON account_transactions (transfer_id)
    WHERE transfer_id IS NOT NULL;

CREATE TABLE transfers (
    transfer_id     uuid        PRIMARY KEY,
    from_account_id uuid        NOT NULL,
    to_account_id   uuid        NOT NULL,
    amount          bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    reason          text,
    reference       text,
    debited_at      timestamptz NOT NULL,
    credited_at     timestamptz,
    refunded_at     timestamptz,
    updated_at      timestamptz NOT NULL
);

-- Every envelope as written, for auditors and analysts.
CREATE TABLE event_archive (
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    aggregate_type text        NOT NULL,
    aggregate_id   uuid        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    envelope       jsonb       NOT NULL,
    PRIMARY KEY (partition, "offset"),
    UNIQUE (aggregate_id, sequence)
);
CREATE INDEX event_archive_type_time_idx ON event_archive (event_type, occurred_at);
CREATE INDEX event_archive_time_idx ON event_archive (occurred_at);
