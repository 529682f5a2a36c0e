-- Read models folded from the event log, and the projector offsets stored with them.
--
-- Every projector transaction writes its read-model rows AND the next offset of each events
-- partition it consumed, so a row of projection_offsets is the truth for where a projection
-- resumes. Writes are keyed so that a replay never applies an event twice: accounts move only
-- forward by version, ledger lines are keyed by (account_id, sequence), archive rows by their
-- log position.

-- Next offset to read per projection and events partition. `error` is set when the partition
-- stopped on a poison event sitting at next_offset (cleared when it moves on again).
CREATE TABLE projection_offsets (
    projection  text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

-- One row per account; version = sequence of the last event applied.
CREATE TABLE accounts (
    account_id      uuid        PRIMARY KEY,
    owner_id        text        NOT NULL,
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance         bigint      NOT NULL,
    overdraft_limit bigint      NOT NULL CHECK (overdraft_limit >= 0),
    status          text        NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    version         bigint      NOT NULL CHECK (version > 0),
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- GET /v1/accounts?owner_id= and ?status= (keyset pagination on account_id).
CREATE INDEX accounts_owner_idx ON accounts (owner_id, account_id);
CREATE INDEX accounts_status_idx ON accounts (status, account_id);

-- One ledger line per balance change. `amount` is signed: negative when money left the account.
CREATE TABLE account_transactions (
    account_id      uuid        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence > 0),
    kind            text        NOT NULL CHECK (kind IN (
                        'deposit', 'withdrawal', 'transfer_debit', 'transfer_credit',
                        'transfer_refund')),
    amount          bigint      NOT NULL CHECK (amount <> 0),
    balance_after   bigint      NOT NULL,
    reference       text,
    transfer_id     uuid,
    counterparty_id uuid,
    event_id        uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    -- GET /v1/accounts/{id}/transactions pages on this key.
    PRIMARY KEY (account_id, sequence)
);
CREATE INDEX account_transactions_transfer_idx ON account_transactions (transfer_id)
    WHERE transfer_id IS NOT NULL;

-- Transfers, merged from their legs. The legs live on two accounts (often two partitions), so
-- they may be projected in any order: every column is filled by the leg that knows it, and the
-- status follows from which legs have been seen.
CREATE TABLE transfers (
    transfer_id     uuid        PRIMARY KEY,
    from_account_id uuid,
    to_account_id   uuid,
    amount          bigint,
    currency        text,
    status          text        GENERATED ALWAYS AS (
                        CASE WHEN refunded_at IS NOT NULL THEN 'failed'
                             WHEN credited_at IS NOT NULL THEN 'completed'
                             ELSE 'pending' END) STORED,
    reason          text,
    reference       text,
    debited_at      timestamptz,
    credited_at     timestamptz,
    refunded_at     timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX transfers_from_idx ON transfers (from_account_id, transfer_id);
CREATE INDEX transfers_to_idx ON transfers (to_account_id, transfer_id);
-- Transfers still waiting for their second leg (process managers, operations).
CREATE INDEX transfers_pending_idx ON transfers (debited_at)
    WHERE credited_at IS NULL AND refunded_at IS NULL;

-- Every envelope as written, with its log position: the auditors' and analysts' index.
-- Only the position is unique: should the log ever hold a duplicate, the archive shows it.
CREATE TABLE event_archive (
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   uuid        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    envelope       jsonb       NOT NULL,
    PRIMARY KEY (partition, "offset")
);
CREATE INDEX event_archive_aggregate_idx ON event_archive (aggregate_id, sequence);
CREATE INDEX event_archive_event_id_idx ON event_archive (event_id);
CREATE INDEX event_archive_type_time_idx ON event_archive (event_type, occurred_at);
CREATE INDEX event_archive_time_idx ON event_archive (occurred_at);
