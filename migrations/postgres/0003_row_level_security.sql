-- strata's PostgreSQL schema, part 3: row-level security on every table.
--
-- ENABLE makes policies apply to the serving role; FORCE makes them apply
-- to the owner (the migration role) too, so no role of strata sees another
-- tenant's rows by accident. Superusers and BYPASSRLS roles still bypass
-- RLS: `strata check` refuses to serve with such a role.
--
-- With RLS enabled, a command that no policy covers affects no rows, so
-- the policies below also say what a tenant may do (e.g. usage_events has
-- no UPDATE/DELETE policy: it is append-only for tenants).
--
-- The `*_admin` policies apply to pg_database_owner only and only in a
-- transaction that set `strata.admin = 'on'` (see 0001_foundation.sql).

-- tenants: a tenant sees and edits its own row; creating a tenant happens
-- in a transaction whose strata.tenant_id is the new tenant's id.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_self ON tenants
    USING (id = strata_current_tenant())
    WITH CHECK (id = strata_current_tenant());
CREATE POLICY tenants_admin ON tenants TO pg_database_owner
    USING (strata_admin()) WITH CHECK (strata_admin());

-- The ordinary tenant tables: every command sees only the current tenant.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['activities', 'blog_posts', 'social_posts', 'onboarding_runs',
                             'strategies', 'contracts', 'tool_calls', 'integrations']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I USING (tenant_id = strata_current_tenant()) '
            'WITH CHECK (tenant_id = strata_current_tenant())',
            t || '_tenant', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I TO pg_database_owner USING (strata_admin()) '
            'WITH CHECK (strata_admin())',
            t || '_admin', t);
    END LOOP;
END
$$;

-- usage_events: append-only for tenants (read and insert, nothing else).
ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_events_tenant_read ON usage_events FOR SELECT
    USING (tenant_id = strata_current_tenant());
CREATE POLICY usage_events_tenant_insert ON usage_events FOR INSERT
    WITH CHECK (tenant_id = strata_current_tenant());
CREATE POLICY usage_events_admin ON usage_events TO pg_database_owner
    USING (strata_admin()) WITH CHECK (strata_admin());

-- skills: global templates (tenant_id IS NULL) are readable by every
-- tenant; tenants write only their own skills. Global templates are
-- written by administrative transactions.
ALTER TABLE skills ENABLE ROW LEVEL SECURITY;
ALTER TABLE skills FORCE ROW LEVEL SECURITY;
CREATE POLICY skills_tenant_read ON skills FOR SELECT
    USING (tenant_id IS NULL OR tenant_id = strata_current_tenant());
CREATE POLICY skills_tenant_insert ON skills FOR INSERT
    WITH CHECK (tenant_id = strata_current_tenant());
CREATE POLICY skills_tenant_update ON skills FOR UPDATE
    USING (tenant_id = strata_current_tenant())
    WITH CHECK (tenant_id = strata_current_tenant());
CREATE POLICY skills_tenant_delete ON skills FOR DELETE
    USING (tenant_id = strata_current_tenant());
CREATE POLICY skills_admin ON skills TO pg_database_owner
    USING (strata_admin()) WITH CHECK (strata_admin());
