-- strata: compatible-with-older-binaries
-- strata's PostgreSQL schema, part 7: the audit trail's transactional outbox.
--
-- Every change of a tenant record appends one row here IN THE REQUEST'S
-- TRANSACTION, so its diff commits or rolls back with the change. A drainer
-- (every strata instance runs one, on the administrative path) moves the
-- rows to MongoDB's entity_diffs and deletes them only after MongoDB
-- acknowledged the insert (write concern majority): a strata killed right
-- after a commit leaves the row here for the next drain, never a lost diff.
--
-- The MongoDB refId of a row is derived from (created_on in ms, seq): the
-- same row always gets the same refId, so a drain repeated after a crash
-- between the MongoDB insert and the delete inserts nothing twice (unique
-- (tenantId, refId) in MongoDB). seq is an identity column (inserting needs
-- no privilege on its sequence) and created_on is the clock at the insert,
-- which runs after the change took its row lock: for one record, both grow
-- with every change, so refIds order a record's history.
--
-- Compatible with older binaries: an added table that they do not use.

CREATE TABLE audit_outbox (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    -- The record's table (the checks mirror entity_diffs' validator, so a
    -- row MongoDB would refuse cannot be committed in the first place).
    entity      text NOT NULL
                CHECK (entity IN ('activities', 'blog_posts', 'social_posts', 'onboarding_runs',
                                  'strategies', 'contracts', 'tool_calls', 'skills',
                                  'integrations', 'usage_events')),
    entity_ref  ulid NOT NULL,
    action      text NOT NULL CHECK (action IN ('create', 'update', 'transition', 'delete')),
    -- The service token's name.
    actor       text NOT NULL CHECK (length(btrim(actor)) BETWEEN 1 AND 200),
    -- {"before": ..., "after": ...} in the API's wire form.
    diff        jsonb NOT NULL CHECK (jsonb_typeof(diff) = 'object'),
    created_on  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- History reads merge a record's pending rows (read-your-writes).
CREATE INDEX audit_outbox_entity_idx ON audit_outbox (tenant_id, entity, entity_ref, seq);

-- Append-only for tenants (like usage_events): the serving role may insert
-- and read its own tenant's pending rows; no UPDATE or DELETE policy, so
-- those change nothing even though the runner grants them. Draining
-- (read every tenant's rows, delete them) is the migration role's work.
ALTER TABLE audit_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_outbox_tenant_read ON audit_outbox FOR SELECT
    USING (tenant_id = strata_current_tenant());
CREATE POLICY audit_outbox_tenant_insert ON audit_outbox FOR INSERT
    WITH CHECK (tenant_id = strata_current_tenant());
CREATE POLICY audit_outbox_owner ON audit_outbox TO CURRENT_USER
    USING (true) WITH CHECK (true);
