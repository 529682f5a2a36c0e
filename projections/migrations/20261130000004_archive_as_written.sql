-- The archive keeps each envelope as written (text), not as jsonb: it is only ever read back
-- whole and decoded, and hashes are recomputed from the decoded envelope, so parsing it into
-- jsonb on every insert bought nothing and cost the projector and every rebuild.
--
-- Only the indexes a query uses stay: the primary key (partition, offset) for the analysts'
-- stream and the verify walk, and (aggregate_id, sequence) for an account's history and as-of
-- state. The event id, time and type indexes served no query; each made every insert slower.
DROP INDEX IF EXISTS event_archive_event_id_idx;
DROP INDEX IF EXISTS event_archive_type_time_idx;
DROP INDEX IF EXISTS event_archive_time_idx;
ALTER TABLE event_archive ALTER COLUMN envelope TYPE text USING envelope::text;

-- Accounts change on every money event (balance, version, updated_at: no index covers them);
-- room left in each page lets PostgreSQL update them in place (HOT) instead of writing a new
-- tuple and new entries in every index.
ALTER TABLE accounts SET (fillfactor = 70);
