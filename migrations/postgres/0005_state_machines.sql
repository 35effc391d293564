-- strata's PostgreSQL schema, part 5: the state machines of SPEC section 2
-- held by PostgreSQL itself, and S3 keys checked where they are stored.
--
-- strata_transitions lists every allowed status change, once, as data
-- (`from_status IS NULL`: a row may be created in `to_status`). A trigger
-- on each table with a status refuses any other change in the transaction
-- that attempts it, with SQLSTATE ST409 and a DETAIL in JSON:
--   {"entity": "strategies", "ref": "01J…", "from": "superseded",
--    "to": "active", "allowed": []}
-- so the API can answer 409 with the allowed next states. The serving role
-- has no privilege on strata_transitions (the runner grants nothing on
-- strata_* tables): the triggers read it as the migration role.
--
-- src/domain/state_machines.rs holds the same table for pure logic; a test
-- compares the two.

CREATE TABLE strata_transitions (
    entity      text NOT NULL,
    from_status text NULL,
    to_status   text NOT NULL,
    CONSTRAINT strata_transitions_key UNIQUE NULLS NOT DISTINCT (entity, from_status, to_status)
);

INSERT INTO strata_transitions (entity, from_status, to_status) VALUES
    -- tenants: active ⇄ suspended → deleted (soft, then purge)
    ('tenants', NULL, 'active'),
    ('tenants', 'active', 'suspended'),
    ('tenants', 'suspended', 'active'),
    ('tenants', 'active', 'deleted'),
    ('tenants', 'suspended', 'deleted'),
    -- activities: queued → running → succeeded / failed / cancelled
    -- (a queued activity may be cancelled before it runs)
    ('activities', NULL, 'queued'),
    ('activities', NULL, 'running'),
    ('activities', 'queued', 'running'),
    ('activities', 'queued', 'cancelled'),
    ('activities', 'running', 'succeeded'),
    ('activities', 'running', 'failed'),
    ('activities', 'running', 'cancelled'),
    -- blog_posts: draft → in_review → approved → scheduled → published;
    -- in_review → changes_requested → draft; any → archived
    ('blog_posts', NULL, 'draft'),
    ('blog_posts', 'draft', 'in_review'),
    ('blog_posts', 'in_review', 'approved'),
    ('blog_posts', 'in_review', 'changes_requested'),
    ('blog_posts', 'changes_requested', 'draft'),
    ('blog_posts', 'approved', 'scheduled'),
    ('blog_posts', 'scheduled', 'published'),
    ('blog_posts', 'draft', 'archived'),
    ('blog_posts', 'in_review', 'archived'),
    ('blog_posts', 'changes_requested', 'archived'),
    ('blog_posts', 'approved', 'archived'),
    ('blog_posts', 'scheduled', 'archived'),
    ('blog_posts', 'published', 'archived'),
    -- social_posts: draft → approved → scheduled → published / failed;
    -- failed → scheduled (retry); any → archived
    ('social_posts', NULL, 'draft'),
    ('social_posts', 'draft', 'approved'),
    ('social_posts', 'approved', 'scheduled'),
    ('social_posts', 'scheduled', 'published'),
    ('social_posts', 'scheduled', 'failed'),
    ('social_posts', 'failed', 'scheduled'),
    ('social_posts', 'draft', 'archived'),
    ('social_posts', 'approved', 'archived'),
    ('social_posts', 'scheduled', 'archived'),
    ('social_posts', 'published', 'archived'),
    ('social_posts', 'failed', 'archived'),
    -- onboarding_runs: pending → scraping → researching → completed;
    -- any open → failed
    ('onboarding_runs', NULL, 'pending'),
    ('onboarding_runs', 'pending', 'scraping'),
    ('onboarding_runs', 'scraping', 'researching'),
    ('onboarding_runs', 'researching', 'completed'),
    ('onboarding_runs', 'pending', 'failed'),
    ('onboarding_runs', 'scraping', 'failed'),
    ('onboarding_runs', 'researching', 'failed'),
    -- strategies: draft → pending_approval → approved / rejected;
    -- approved → active → superseded
    ('strategies', NULL, 'draft'),
    ('strategies', 'draft', 'pending_approval'),
    ('strategies', 'pending_approval', 'approved'),
    ('strategies', 'pending_approval', 'rejected'),
    ('strategies', 'approved', 'active'),
    ('strategies', 'active', 'superseded'),
    -- contracts: pending → accepted (then immutable) / declined / expired
    ('contracts', NULL, 'pending'),
    ('contracts', 'pending', 'accepted'),
    ('contracts', 'pending', 'declined'),
    ('contracts', 'pending', 'expired'),
    -- tool_calls: started → succeeded / failed / timed_out; batch ingest
    -- records calls that have already finished
    ('tool_calls', NULL, 'started'),
    ('tool_calls', NULL, 'succeeded'),
    ('tool_calls', NULL, 'failed'),
    ('tool_calls', NULL, 'timed_out'),
    ('tool_calls', 'started', 'succeeded'),
    ('tool_calls', 'started', 'failed'),
    ('tool_calls', 'started', 'timed_out'),
    -- integrations: connected ⇄ error → disconnected
    ('integrations', NULL, 'connected'),
    ('integrations', 'connected', 'error'),
    ('integrations', 'error', 'connected'),
    ('integrations', 'connected', 'disconnected'),
    ('integrations', 'error', 'disconnected');

CREATE FUNCTION strata_enforce_transition() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    old_status text;
    allowed    text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
            RETURN NEW;
        END IF;
        old_status := OLD.status;
    END IF;
    IF EXISTS (SELECT 1 FROM strata_transitions t
               WHERE t.entity = TG_TABLE_NAME
                 AND t.from_status IS NOT DISTINCT FROM old_status
                 AND t.to_status = NEW.status) THEN
        RETURN NEW;
    END IF;
    SELECT coalesce(array_agg(t.to_status ORDER BY t.to_status), '{}') INTO allowed
    FROM strata_transitions t
    WHERE t.entity = TG_TABLE_NAME AND t.from_status IS NOT DISTINCT FROM old_status;
    RAISE EXCEPTION '%', CASE WHEN old_status IS NULL
            THEN format('%s cannot be created with status %s', TG_TABLE_NAME, NEW.status)
            ELSE format('%s %s cannot change status from %s to %s',
                        TG_TABLE_NAME, NEW.ref_id, old_status, NEW.status) END
        USING ERRCODE = 'ST409',
              DETAIL = json_build_object('entity', TG_TABLE_NAME, 'ref', NEW.ref_id,
                                         'from', old_status, 'to', NEW.status,
                                         'allowed', allowed)::text;
END
$$;

-- Every key into S3 starts with its own tenant's prefix, `{tenant ref}/`:
-- a row can never point into another tenant's objects. The key columns are
-- the trigger's arguments.
CREATE FUNCTION strata_check_s3_keys() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    prefix text;
    key_column text;
    s3_key text;
BEGIN
    SELECT ref_id || '/' INTO prefix FROM tenants WHERE id = NEW.tenant_id;
    FOREACH key_column IN ARRAY TG_ARGV LOOP
        s3_key := to_jsonb(NEW) ->> key_column;
        IF s3_key IS NOT NULL AND (prefix IS NULL OR NOT starts_with(s3_key, prefix)) THEN
            RAISE EXCEPTION '%.% must start with the tenant''s prefix %',
                    TG_TABLE_NAME, key_column, coalesce(prefix, '(unknown tenant)')
                USING ERRCODE = '23514', TABLE = TG_TABLE_NAME, COLUMN = key_column;
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['strata_enforce_transition()', 'strata_check_s3_keys()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', t, current_schema());
    END LOOP;
    FOREACH t IN ARRAY ARRAY['tenants', 'activities', 'blog_posts', 'social_posts',
                             'onboarding_runs', 'strategies', 'contracts', 'tool_calls',
                             'integrations']
    LOOP
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF status ON %I '
            'FOR EACH ROW EXECUTE FUNCTION strata_enforce_transition()',
            t || '_transition', t);
    END LOOP;
END
$$;

CREATE TRIGGER contracts_s3_keys BEFORE INSERT OR UPDATE OF pdf_s3_key ON contracts
    FOR EACH ROW EXECUTE FUNCTION strata_check_s3_keys('pdf_s3_key');

-- An active strategy cannot be soft-deleted (supersede it first), so "one
-- active strategy per tenant" also holds across soft deletes.
ALTER TABLE strategies ADD CONSTRAINT strategies_active_not_deleted
    CHECK (status <> 'active' OR deleted_on IS NULL);

-- A terminal tool call has its finish time and its duration. Calls
-- recorded before this migration get them from what they have (a backfill
-- across every tenant: the migration role's policies allow it).
ALTER TABLE tool_calls ADD COLUMN finished_on timestamptz NULL;
UPDATE tool_calls
SET duration_ms = coalesce(duration_ms, 0),
    finished_on = started_on + make_interval(secs => coalesce(duration_ms, 0) / 1000.0)
WHERE status <> 'started';
ALTER TABLE tool_calls ADD CONSTRAINT tool_calls_finished_when_terminal
    CHECK ((status = 'started') = (finished_on IS NULL)
           AND (status = 'started' OR duration_ms IS NOT NULL)),
    ADD CONSTRAINT tool_calls_finished_after_started
    CHECK (finished_on IS NULL OR finished_on >= started_on);
