-- Exactly once across retries and transfer ids.
--
-- An Idempotency-Key keeps the identity of its intent for its whole life: the command id sent to
-- Kafka, the id of what the command creates (an account or a transfer) and the instant of the
-- first attempt (the processor refuses a command first sent longer ago than it remembers). A
-- 5xx answer no longer deletes the row: it is released (in_flight false), and a retry with the
-- same request takes it over with the same identity.
ALTER TABLE idempotency_keys
    ADD COLUMN in_flight        boolean     NOT NULL DEFAULT true,
    ADD COLUMN command_id       uuid,
    ADD COLUMN resource_id      uuid,
    ADD COLUMN first_attempt_at timestamptz;
UPDATE idempotency_keys SET first_attempt_at = started_at WHERE first_attempt_at IS NULL;
ALTER TABLE idempotency_keys ALTER COLUMN first_attempt_at SET NOT NULL;

-- A transfer id names one transfer for ever. The gateway claims it here before the debit is
-- sent, and the row is never deleted (not even when the debit is refused): the same request
-- may retry with it, any other request with this id is refused.
CREATE TABLE transfer_ids (
    transfer_id      uuid        PRIMARY KEY,
    principal_sub    text        NOT NULL,
    principal_role   text        NOT NULL,
    from_account_id  uuid        NOT NULL,
    to_account_id    uuid        NOT NULL,
    amount           bigint      NOT NULL,
    command_id       uuid        NOT NULL,
    first_attempt_at timestamptz NOT NULL
);

CREATE FUNCTION transfer_ids_are_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transfer ids are permanent: % is not allowed on transfer_ids', TG_OP;
END;
$$;
CREATE TRIGGER transfer_ids_permanent BEFORE UPDATE OR DELETE ON transfer_ids
    FOR EACH ROW EXECUTE FUNCTION transfer_ids_are_permanent();
