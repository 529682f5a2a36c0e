-- One database role per Logbook role, with only the rights it needs (docs/security.md,
-- "PostgreSQL roles"). The tables belong to the role that runs the migrations (the owner), which
-- also runs rebuilds, restores and prune-security-audit.
--
--   logbook_api        the HTTP API: reads the read models and the archive; keeps idempotency
--                      keys, transfer id reservations and the security trail (append only)
--   logbook_projector  the projectors: write the read models, the archive and their offsets
--   logbook_tools      verify, export, replay: read everything; replay makes its own schema
--
-- The roles are made here (NOLOGIN) when they do not exist, which needs CREATEROLE; where the
-- migrating role lacks it, an administrator creates them first (LOGIN, with passwords) and this
-- migration only grants. Every later migration that adds a table grants its rights too.
DO $$
DECLARE
    role_name TEXT;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['logbook_api', 'logbook_projector', 'logbook_tools'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- made meanwhile by a migration of another database
            END;
        END IF;
    END LOOP;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO logbook_api, logbook_projector, logbook_tools',
                   current_database());
    EXECUTE format('GRANT CREATE ON DATABASE %I TO logbook_tools', current_database());
END;
$$;

GRANT USAGE ON SCHEMA public TO logbook_api, logbook_projector, logbook_tools;

GRANT SELECT ON accounts, account_transactions, transfers, event_archive, projection_offsets
    TO logbook_api;
GRANT SELECT, INSERT ON security_audit, transfer_ids TO logbook_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO logbook_api;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON accounts, account_transactions, transfers, event_archive, projection_offsets
    TO logbook_projector;

GRANT SELECT ON accounts, account_transactions, transfers, event_archive, projection_offsets,
    security_audit, idempotency_keys, transfer_ids TO logbook_tools;
