-- The security audit trail: every authentication failure, permission denial, rate-limit
-- rejection and admin action seen by the HTTP API (who, what, when, from where).
-- Append-only: a trigger refuses UPDATE and DELETE, so the application cannot rewrite it.
CREATE TABLE security_audit (
    id          BIGSERIAL   PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN
                    ('authentication_failed', 'permission_denied', 'rate_limited', 'admin_action')),
    sub         TEXT,
    role        TEXT,
    client_ip   TEXT,
    method      TEXT        NOT NULL,
    path        TEXT        NOT NULL,
    status      SMALLINT    NOT NULL,
    detail      TEXT
);

CREATE INDEX security_audit_time_idx ON security_audit (occurred_at, id);

CREATE FUNCTION security_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'security_audit is append-only';
END;
$$;

CREATE TRIGGER security_audit_append_only
    BEFORE UPDATE OR DELETE ON security_audit
    FOR EACH ROW EXECUTE FUNCTION security_audit_append_only();
