-- strata's PostgreSQL schema, part 4: an administrative path that the
-- serving role cannot use.
--
-- Until now the `*_admin` policies opened every tenant's rows to the
-- database owner in a transaction that set `strata.admin = 'on'`. A serving
-- role that was (or became a member of) the database owner could set that
-- itself. The setting is gone: nothing a role can SET lifts isolation.
--
-- Instead the MIGRATION role (the user of postgres.direct_url, which runs
-- this file and owns every table) is the administrative role: the `*_owner`
-- policies below are attached to it by name (CURRENT_USER is resolved when
-- the policy is created) and let it see and change every tenant's rows, so
-- migrations can backfill data and strata's admin path (tenant creation,
-- suspension, purges, global skills) works across tenants. strata refuses
-- to serve with a serving role that owns a table, is (a member of) the
-- database owner or of the migration role, or is a superuser / BYPASSRLS.
--
-- The serving role reaches tenants only through strata_tenant_id() below
-- (ref → id for an active tenant) and its own row.

DROP POLICY tenants_admin ON tenants;
DROP POLICY tenants_self ON tenants;
DROP POLICY activities_admin ON activities;
DROP POLICY blog_posts_admin ON blog_posts;
DROP POLICY social_posts_admin ON social_posts;
DROP POLICY onboarding_runs_admin ON onboarding_runs;
DROP POLICY strategies_admin ON strategies;
DROP POLICY contracts_admin ON contracts;
DROP POLICY tool_calls_admin ON tool_calls;
DROP POLICY integrations_admin ON integrations;
DROP POLICY usage_events_admin ON usage_events;
DROP POLICY skills_admin ON skills;
DROP FUNCTION strata_admin();

-- A tenant reads its own row and nothing else; creating, suspending and
-- deleting tenants is the administrative path's work.
CREATE POLICY tenants_self_read ON tenants FOR SELECT
    USING (id = strata_current_tenant());

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'activities', 'blog_posts', 'social_posts',
                             'onboarding_runs', 'strategies', 'contracts', 'tool_calls',
                             'skills', 'integrations', 'usage_events']
    LOOP
        EXECUTE format(
            'CREATE POLICY %I ON %I TO CURRENT_USER USING (true) WITH CHECK (true)',
            t || '_owner', t);
    END LOOP;
END
$$;

-- The one sanctioned way for the serving role to turn a tenant's ref (the
-- ULID the API receives) into its id: NULL for an unknown, suspended or
-- deleted tenant. SECURITY DEFINER runs it as the migration role; its
-- search_path is pinned to strata's schema (then pg_temp, last) so that
-- no object a caller creates can stand in for strata's.
CREATE FUNCTION strata_tenant_id(tenant_ref text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT id FROM tenants
    WHERE ref_id = tenant_ref AND status = 'active' AND deleted_on IS NULL
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION strata_tenant_id(text) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
