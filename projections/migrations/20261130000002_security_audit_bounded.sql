-- The security audit trail stays bounded under attack and over time.
--
-- Unauthenticated denials (401, and 429 before authentication) are aggregated per source and
-- minute: one row with `count` instead of one per request. Rows past the retention age can be
-- deleted, by `logbook prune-security-audit` only: the trigger allows a DELETE only of rows older
-- than the cut-off the tool announces in its transaction (`logbook.prune_before`), and never of
-- rows younger than 30 days. The tool records each prune as an admin action.
ALTER TABLE security_audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);

CREATE OR REPLACE FUNCTION security_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff TIMESTAMPTZ := nullif(current_setting('logbook.prune_before', true), '')::timestamptz;
BEGIN
    IF TG_OP = 'DELETE'
       AND cutoff IS NOT NULL
       AND OLD.occurred_at < cutoff
       AND OLD.occurred_at < now() - interval '30 days' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'security_audit is append-only (rows past the retention age are removed by logbook prune-security-audit)';
END;
$$;
