-- strata's PostgreSQL schema, part 1: shared types and functions, tenants.
--
-- Roles (read this before installing):
--
--   * The MIGRATION role is the user of `postgres.direct_url` (a direct
--     connection, never PgBouncer). It runs these files, so it OWNS every
--     table. It needs CREATE on the database (being the database owner is
--     simplest). It must NOT be a superuser or have BYPASSRLS: every table
--     below is `FORCE ROW LEVEL SECURITY`, so even the owner sees no tenant
--     rows unless a query states whose rows it wants.
--   * The SERVING role is whoever `postgres.url` logs in as on the server
--     (through PgBouncer in production). strata never hard-codes its name:
--     after applying migrations, the runner asks the server for
--     `current_user` on `postgres.url` and GRANTs it SELECT, INSERT, UPDATE,
--     DELETE on strata's tables (and nothing on the migration history).
--     The DBA only creates the two login roles; no CREATEROLE is needed.
--     `strata check` reports missing grants as schema drift.
--
-- Tenant isolation: every request runs in one transaction that first does
-- `SELECT set_config('strata.tenant_id', '<tenant uuid>', true)`. The
-- setting is transaction-local, so it cannot leak to the next client of a
-- PgBouncer server connection. Policies compare rows with
-- strata_current_tenant(), which is NULL (matches nothing) when the setting
-- is missing, empty or malformed: failing closed, never erroring.
--
-- Administrative work across tenants (listing tenants, writing global
-- skills, purges) is deliberate: it must run as the database owner AND set
-- `strata.admin = 'on'` in its transaction. The serving role can set the
-- variable but is not the database owner, so it gains nothing from it.

-- A ULID as exposed in APIs: 26 Crockford base32 characters, upper case,
-- the first at most '7' (48-bit timestamp).
CREATE DOMAIN ulid AS text
    CHECK (VALUE ~ '^[0-7][0-9A-HJKMNP-TV-Z]{25}$');

-- The tenant of the current transaction, or NULL.
CREATE FUNCTION strata_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN current_setting('strata.tenant_id', true)
             ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        THEN current_setting('strata.tenant_id', true)::uuid
    END
$$;

-- True in a deliberate administrative transaction (see above). Policies
-- using it are attached to pg_database_owner only.
CREATE FUNCTION strata_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(current_setting('strata.admin', true), '') = 'on'
$$;

-- Keeps updated_on honest whatever the client sends.
CREATE FUNCTION strata_touch_updated_on() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_on := now();
    RETURN NEW;
END
$$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id      ulid NOT NULL,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    plan        text NOT NULL CHECK (length(plan) BETWEEN 1 AND 64),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    created_on  timestamptz NOT NULL DEFAULT now(),
    updated_on  timestamptz NOT NULL DEFAULT now(),
    deleted_on  timestamptz NULL,
    CONSTRAINT tenants_ref_id_key UNIQUE (ref_id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    -- A soft-deleted tenant says so in both places.
    CONSTRAINT tenants_deleted_consistent
        CHECK ((status = 'deleted') = (deleted_on IS NOT NULL))
);

CREATE INDEX tenants_status_idx ON tenants (status, ref_id) WHERE deleted_on IS NULL;

CREATE TRIGGER tenants_touch BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();
