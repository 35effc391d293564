-- strata: compatible-with-older-binaries
-- strata's PostgreSQL schema, part 6: service tokens for the data API.
--
-- A service token belongs to one tenant (tenant_id) or, for platform
-- services, to all of them (tenant_id NULL). Only the SHA-256 of its
-- secret is stored; the secret is shown once when it is made. Tokens are
-- created, listed and revoked on the administrative path (the migration
-- role); the serving role has no privilege on this table (the runner grants
-- nothing on strata_* tables) and reaches it only through
-- strata_authenticate() below.

CREATE TABLE strata_service_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id        ulid NOT NULL,
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    -- NULL: the token may act on every tenant.
    tenant_id     uuid NULL REFERENCES tenants (id),
    created_on    timestamptz NOT NULL DEFAULT now(),
    expires_on    timestamptz NULL,
    revoked_on    timestamptz NULL,
    CONSTRAINT strata_service_tokens_ref_id_key UNIQUE (ref_id),
    -- The authentication lookup: by hash, through this index.
    CONSTRAINT strata_service_tokens_secret_key UNIQUE (secret_sha256),
    CONSTRAINT strata_service_tokens_expires_after_created
        CHECK (expires_on IS NULL OR expires_on > created_on)
);

-- A table with a tenant_id is under row-level security like every other:
-- only the migration role (the administrative path, and the function below
-- running as it) sees its rows.
ALTER TABLE strata_service_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_service_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY strata_service_tokens_owner ON strata_service_tokens TO CURRENT_USER
    USING (true) WITH CHECK (true);

-- Authenticates one data API request: the token's hash (not revoked, not
-- expired) and the tenant ref of the request's path. `outcome` is one of
--   ok                the token may act on the tenant: tenant_id is returned
--                     AND set as this transaction's strata.tenant_id
--   unknown_token     no such token, or revoked, or expired
--   unknown_tenant    no such (or a deleted) tenant, or a tenant token used
--                     on another tenant: the API answers 404 for both, so a
--                     token learns nothing about other tenants
--   tenant_suspended  the token may act on the tenant, which is suspended
-- token_ref and token_name are set whenever the token is valid.
--
-- So authentication, the tenant and the setting row-level security reads
-- cost one statement. The setting is transaction-local (PgBouncer-safe);
-- only the function's own SET clause (search_path) is undone at its exit.
-- On any other outcome strata.tenant_id is emptied: the transaction then
-- sees no tenant's rows.
--
-- The lookup is an equality on the unique index over the hash, so its
-- timing depends on the hash, never on how much of the secret matched.
CREATE FUNCTION strata_authenticate(token_sha256 bytea, tenant_ref text)
    RETURNS TABLE (outcome text, token_ref text, token_name text, tenant_id uuid)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
AS $$
DECLARE
    token  strata_service_tokens%ROWTYPE;
    tenant tenants%ROWTYPE;
BEGIN
    PERFORM set_config('strata.tenant_id', '', true);
    SELECT * INTO token FROM strata_service_tokens t
    WHERE t.secret_sha256 = token_sha256
      AND t.revoked_on IS NULL
      AND (t.expires_on IS NULL OR t.expires_on > now());
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown_token'::text, NULL::text, NULL::text, NULL::uuid;
        RETURN;
    END IF;
    SELECT * INTO tenant FROM tenants t
    WHERE t.ref_id = tenant_ref AND t.deleted_on IS NULL;
    IF NOT FOUND OR (token.tenant_id IS NOT NULL AND token.tenant_id <> tenant.id) THEN
        RETURN QUERY SELECT 'unknown_tenant'::text, token.ref_id::text, token.name, NULL::uuid;
    ELSIF tenant.status <> 'active' THEN
        RETURN QUERY SELECT 'tenant_suspended'::text, token.ref_id::text, token.name, NULL::uuid;
    ELSE
        PERFORM set_config('strata.tenant_id', tenant.id::text, true);
        RETURN QUERY SELECT 'ok'::text, token.ref_id::text, token.name, tenant.id;
    END IF;
END
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION strata_authenticate(bytea, text) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
