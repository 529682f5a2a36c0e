-- The account holder's personal data, as the log carries it: a JSON object of sealed values
-- (name, email, address, birth_date), each encrypted by the gateway with the owner's data key.
-- Never plain text: the query API opens it for the callers allowed to see it, and an erased
-- owner's values stay here unreadable (their key is gone).
ALTER TABLE accounts ADD COLUMN holder text;

-- The owners' data keys: one row per key, the key itself wrapped (AES-256-GCM) by a
-- key-encryption key from configuration, named by its fingerprint. Keys are the one thing not
-- rebuilt from the log, by design: erasure deletes them. An erased owner keeps a row in
-- owner_erasures; a key of that owner created before the erasure is refused on insert, so a
-- restore of an older dump of this table does not bring an erased key back.
CREATE TABLE owner_keys (
    key_id      uuid PRIMARY KEY,
    owner_id    text NOT NULL,
    kek_id      text NOT NULL,
    wrapped_key bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX owner_keys_one_per_owner ON owner_keys (owner_id);
CREATE INDEX owner_keys_kek_idx ON owner_keys (kek_id);

CREATE TABLE owner_erasures (
    owner_id   text PRIMARY KEY,
    erased_at  timestamptz NOT NULL,
    erased_by  text NOT NULL
);

CREATE FUNCTION owner_keys_refuse_erased() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM owner_erasures e
               WHERE e.owner_id = NEW.owner_id AND e.erased_at >= NEW.created_at) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER owner_keys_refuse_erased BEFORE INSERT ON owner_keys
    FOR EACH ROW EXECUTE FUNCTION owner_keys_refuse_erased();

-- The API creates, reads and (on erasure) deletes keys and records erasures; key rotation runs
-- as the owner of the tables (like migrations). No other role sees the keys, wrapped or not.
GRANT SELECT, INSERT, DELETE ON owner_keys, owner_erasures TO logbook_api;
