-- strata's PostgreSQL schema, part 2: the tenant records (SPEC section 2).
--
-- Every table: `id` (internal joins), `ref_id` (the ULID APIs expose),
-- `tenant_id`, created/updated/deleted timestamps, a status constrained to
-- its state machine's states. References between records are composite
-- (tenant_id, x_id) so that a row can never point at another tenant's row.
-- Pointers into MongoDB (`*_ref`) hold the target's ULID.
--
-- Indexes follow the queries: lookups by ref_id (unique), lists per tenant
-- (optionally by status) paginated by ref_id, all partial on
-- `deleted_on IS NULL` because reads skip soft-deleted rows.

-- activities: queued → running → succeeded / failed / cancelled
CREATE TABLE activities (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id       ulid NOT NULL,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    kind         text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    started_on   timestamptz NULL,
    finished_on  timestamptz NULL,
    error        text NULL,
    output_ref   ulid NULL,
    created_on   timestamptz NOT NULL DEFAULT now(),
    updated_on   timestamptz NOT NULL DEFAULT now(),
    deleted_on   timestamptz NULL,
    CONSTRAINT activities_ref_id_key UNIQUE (ref_id),
    CONSTRAINT activities_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT activities_finished_after_started
        CHECK (finished_on IS NULL OR started_on IS NULL OR finished_on >= started_on),
    CONSTRAINT activities_finished_when_terminal
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_on IS NOT NULL))
);
CREATE INDEX activities_tenant_ref_idx ON activities (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX activities_tenant_status_idx ON activities (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE TRIGGER activities_touch BEFORE UPDATE ON activities
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- blog_posts: draft → in_review → approved → scheduled → published;
-- changes_requested → draft; any → archived
CREATE TABLE blog_posts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id        ulid NOT NULL,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    activity_id   uuid NULL,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    channel       text NULL,
    word_count    integer NULL CHECK (word_count >= 0),
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'in_review', 'changes_requested', 'approved',
                                    'scheduled', 'published', 'archived')),
    scheduled_for timestamptz NULL,
    published_on  timestamptz NULL,
    output_ref    ulid NULL,
    created_on    timestamptz NOT NULL DEFAULT now(),
    updated_on    timestamptz NOT NULL DEFAULT now(),
    deleted_on    timestamptz NULL,
    CONSTRAINT blog_posts_ref_id_key UNIQUE (ref_id),
    CONSTRAINT blog_posts_activity_fkey FOREIGN KEY (tenant_id, activity_id)
        REFERENCES activities (tenant_id, id),
    CONSTRAINT blog_posts_scheduled_has_time
        CHECK (status <> 'scheduled' OR scheduled_for IS NOT NULL),
    CONSTRAINT blog_posts_published_has_time
        CHECK (status <> 'published' OR published_on IS NOT NULL)
);
CREATE INDEX blog_posts_tenant_ref_idx ON blog_posts (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX blog_posts_tenant_status_idx ON blog_posts (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX blog_posts_activity_idx ON blog_posts (tenant_id, activity_id) WHERE activity_id IS NOT NULL;
-- The publisher's work queue: scheduled posts by due time.
CREATE INDEX blog_posts_due_idx ON blog_posts (scheduled_for) WHERE status = 'scheduled' AND deleted_on IS NULL;
CREATE TRIGGER blog_posts_touch BEFORE UPDATE ON blog_posts
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- social_posts: draft → approved → scheduled → published / failed
-- (failed → scheduled retry); any → archived
CREATE TABLE social_posts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id        ulid NOT NULL,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    activity_id   uuid NULL,
    platform      text NOT NULL CHECK (length(platform) BETWEEN 1 AND 64),
    scheduled_for timestamptz NULL,
    published_on  timestamptz NULL,
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'approved', 'scheduled', 'published', 'failed',
                                    'archived')),
    error         text NULL,
    output_ref    ulid NULL,
    created_on    timestamptz NOT NULL DEFAULT now(),
    updated_on    timestamptz NOT NULL DEFAULT now(),
    deleted_on    timestamptz NULL,
    CONSTRAINT social_posts_ref_id_key UNIQUE (ref_id),
    CONSTRAINT social_posts_activity_fkey FOREIGN KEY (tenant_id, activity_id)
        REFERENCES activities (tenant_id, id),
    CONSTRAINT social_posts_scheduled_has_time
        CHECK (status <> 'scheduled' OR scheduled_for IS NOT NULL),
    CONSTRAINT social_posts_published_has_time
        CHECK (status <> 'published' OR published_on IS NOT NULL)
);
CREATE INDEX social_posts_tenant_ref_idx ON social_posts (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX social_posts_tenant_status_idx ON social_posts (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX social_posts_activity_idx ON social_posts (tenant_id, activity_id) WHERE activity_id IS NOT NULL;
CREATE INDEX social_posts_due_idx ON social_posts (scheduled_for) WHERE status = 'scheduled' AND deleted_on IS NULL;
CREATE TRIGGER social_posts_touch BEFORE UPDATE ON social_posts
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- onboarding_runs: pending → scraping → researching → completed;
-- any open → failed
CREATE TABLE onboarding_runs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id          ulid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    website         text NOT NULL CHECK (website ~* '^https?://'),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'scraping', 'researching', 'completed', 'failed')),
    context_file_id text NULL,
    research_ref    ulid NULL,
    error           text NULL,
    started_on      timestamptz NULL,
    finished_on     timestamptz NULL,
    created_on      timestamptz NOT NULL DEFAULT now(),
    updated_on      timestamptz NOT NULL DEFAULT now(),
    deleted_on      timestamptz NULL,
    CONSTRAINT onboarding_runs_ref_id_key UNIQUE (ref_id),
    CONSTRAINT onboarding_runs_finished_when_terminal
        CHECK ((status IN ('completed', 'failed')) = (finished_on IS NOT NULL))
);
CREATE INDEX onboarding_runs_tenant_ref_idx ON onboarding_runs (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX onboarding_runs_tenant_status_idx ON onboarding_runs (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE TRIGGER onboarding_runs_touch BEFORE UPDATE ON onboarding_runs
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- strategies: draft → pending_approval → approved / rejected;
-- approved → active → superseded; at most ONE active per tenant
CREATE TABLE strategies (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id          ulid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    version         integer NOT NULL CHECK (version >= 1),
    status          text NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'pending_approval', 'approved', 'rejected',
                                      'active', 'superseded')),
    effective_from  timestamptz NULL,
    effective_until timestamptz NULL,
    approved_by     text NULL,
    approved_on     timestamptz NULL,
    content_ref     ulid NULL,
    created_on      timestamptz NOT NULL DEFAULT now(),
    updated_on      timestamptz NOT NULL DEFAULT now(),
    deleted_on      timestamptz NULL,
    CONSTRAINT strategies_ref_id_key UNIQUE (ref_id),
    CONSTRAINT strategies_tenant_version_key UNIQUE (tenant_id, version),
    CONSTRAINT strategies_effective_range
        CHECK (effective_until IS NULL OR effective_from IS NULL OR effective_until > effective_from),
    -- Approval is recorded before a strategy can be approved, active or superseded.
    CONSTRAINT strategies_approval_recorded
        CHECK (status NOT IN ('approved', 'active', 'superseded')
               OR (approved_by IS NOT NULL AND approved_on IS NOT NULL))
);
-- At most one active strategy per tenant: a second activation fails in
-- the transaction that attempts it.
CREATE UNIQUE INDEX strategies_one_active_per_tenant ON strategies (tenant_id)
    WHERE status = 'active' AND deleted_on IS NULL;
CREATE INDEX strategies_tenant_ref_idx ON strategies (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX strategies_tenant_status_idx ON strategies (tenant_id, status, version) WHERE deleted_on IS NULL;
CREATE TRIGGER strategies_touch BEFORE UPDATE ON strategies
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- contracts: pending → accepted (then immutable) / declined / expired
CREATE TABLE contracts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id              ulid NOT NULL,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    template            text NOT NULL CHECK (length(template) BETWEEN 1 AND 200),
    template_version    text NOT NULL CHECK (length(template_version) BETWEEN 1 AND 64),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'accepted', 'declined', 'expired')),
    accepted_by_name    text NULL,
    accepted_by_email   text NULL CHECK (accepted_by_email LIKE '%_@_%'),
    accepted_on         timestamptz NULL,
    accepted_ip         inet NULL,
    accepted_user_agent text NULL,
    pdf_s3_key          text NULL,
    pdf_sha256          text NULL CHECK (pdf_sha256 ~ '^[0-9a-f]{64}$'),
    pdf_version_id      text NULL,
    retain_until        timestamptz NULL,
    pdf_ref             ulid NULL,
    created_on          timestamptz NOT NULL DEFAULT now(),
    updated_on          timestamptz NOT NULL DEFAULT now(),
    deleted_on          timestamptz NULL,
    CONSTRAINT contracts_ref_id_key UNIQUE (ref_id),
    -- An accepted contract carries its whole acceptance record and its WORM copy.
    CONSTRAINT contracts_acceptance_complete
        CHECK (status <> 'accepted'
               OR (accepted_by_name IS NOT NULL AND accepted_by_email IS NOT NULL
                   AND accepted_on IS NOT NULL AND accepted_ip IS NOT NULL
                   AND accepted_user_agent IS NOT NULL AND pdf_s3_key IS NOT NULL
                   AND pdf_sha256 IS NOT NULL AND pdf_version_id IS NOT NULL
                   AND retain_until IS NOT NULL))
);
CREATE INDEX contracts_tenant_ref_idx ON contracts (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX contracts_tenant_status_idx ON contracts (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE TRIGGER contracts_touch BEFORE UPDATE ON contracts
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- Once accepted, a contract row is a legal record: no update, no delete
-- (its PDF is under Object Lock in S3). SQLSTATE 55000 (object not in
-- prerequisite state) lets the API answer 409.
CREATE FUNCTION strata_contract_immutable() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF OLD.status = 'accepted' THEN
        RAISE EXCEPTION 'contract % is accepted and therefore immutable', OLD.ref_id
            USING ERRCODE = '55000';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER contracts_immutable_once_accepted BEFORE UPDATE OR DELETE ON contracts
    FOR EACH ROW EXECUTE FUNCTION strata_contract_immutable();

-- tool_calls: started → succeeded / failed / timed_out
CREATE TABLE tool_calls (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id       ulid NOT NULL,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    activity_id  uuid NULL,
    tool_name    text NOT NULL CHECK (length(tool_name) BETWEEN 1 AND 200),
    method       text NOT NULL CHECK (length(method) BETWEEN 1 AND 200),
    status       text NOT NULL DEFAULT 'started'
                 CHECK (status IN ('started', 'succeeded', 'failed', 'timed_out')),
    started_on   timestamptz NOT NULL DEFAULT now(),
    duration_ms  integer NULL CHECK (duration_ms >= 0),
    payload_ref  ulid NULL,
    created_on   timestamptz NOT NULL DEFAULT now(),
    updated_on   timestamptz NOT NULL DEFAULT now(),
    deleted_on   timestamptz NULL,
    CONSTRAINT tool_calls_ref_id_key UNIQUE (ref_id),
    CONSTRAINT tool_calls_activity_fkey FOREIGN KEY (tenant_id, activity_id)
        REFERENCES activities (tenant_id, id)
);
CREATE INDEX tool_calls_tenant_ref_idx ON tool_calls (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX tool_calls_tenant_status_idx ON tool_calls (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX tool_calls_activity_idx ON tool_calls (tenant_id, activity_id, ref_id) WHERE activity_id IS NOT NULL;
CREATE TRIGGER tool_calls_touch BEFORE UPDATE ON tool_calls
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- skills: tenant_id IS NULL marks a global template, readable by everyone.
CREATE TABLE skills (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id       ulid NOT NULL,
    tenant_id    uuid NULL REFERENCES tenants (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug         text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$'),
    version      integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    content_ref  ulid NULL,
    created_on   timestamptz NOT NULL DEFAULT now(),
    updated_on   timestamptz NOT NULL DEFAULT now(),
    deleted_on   timestamptz NULL,
    CONSTRAINT skills_ref_id_key UNIQUE (ref_id),
    -- One row per (owner, slug, version); NULL (global) counts as one owner.
    CONSTRAINT skills_owner_slug_version_key UNIQUE NULLS NOT DISTINCT (tenant_id, slug, version)
);
CREATE INDEX skills_tenant_ref_idx ON skills (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX skills_tenant_slug_idx ON skills (tenant_id, slug, version DESC) WHERE deleted_on IS NULL;
CREATE TRIGGER skills_touch BEFORE UPDATE ON skills
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- integrations: connected ⇄ error → disconnected
CREATE TABLE integrations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id           ulid NOT NULL,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    provider         text NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
    external_account text NOT NULL CHECK (length(external_account) BETWEEN 1 AND 500),
    status           text NOT NULL DEFAULT 'connected'
                     CHECK (status IN ('connected', 'error', 'disconnected')),
    last_error       text NULL,
    created_on       timestamptz NOT NULL DEFAULT now(),
    updated_on       timestamptz NOT NULL DEFAULT now(),
    deleted_on       timestamptz NULL,
    CONSTRAINT integrations_ref_id_key UNIQUE (ref_id)
);
-- One live connection per tenant, provider and external account.
CREATE UNIQUE INDEX integrations_account_key ON integrations (tenant_id, provider, external_account)
    WHERE deleted_on IS NULL AND status <> 'disconnected';
CREATE INDEX integrations_tenant_ref_idx ON integrations (tenant_id, ref_id) WHERE deleted_on IS NULL;
CREATE INDEX integrations_tenant_status_idx ON integrations (tenant_id, status, ref_id) WHERE deleted_on IS NULL;
CREATE TRIGGER integrations_touch BEFORE UPDATE ON integrations
    FOR EACH ROW EXECUTE FUNCTION strata_touch_updated_on();

-- usage_events: append-only; billing = aggregates per tenant/metric/month.
CREATE TABLE usage_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ref_id       ulid NOT NULL,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    activity_id  uuid NULL,
    metric       text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_.]{0,99}$'),
    quantity     bigint NOT NULL CHECK (quantity >= 0),
    occurred_on  timestamptz NOT NULL DEFAULT now(),
    created_on   timestamptz NOT NULL DEFAULT now(),
    updated_on   timestamptz NOT NULL DEFAULT now(),
    deleted_on   timestamptz NULL,
    CONSTRAINT usage_events_ref_id_key UNIQUE (ref_id),
    CONSTRAINT usage_events_activity_fkey FOREIGN KEY (tenant_id, activity_id)
        REFERENCES activities (tenant_id, id)
);
CREATE INDEX usage_events_tenant_ref_idx ON usage_events (tenant_id, ref_id) WHERE deleted_on IS NULL;
-- Monthly aggregation: `WHERE tenant_id = $1 AND occurred_on >= $month
-- AND occurred_on < $next GROUP BY metric` is a range scan of this index,
-- and INCLUDE (quantity) makes the sum an index-only scan.
CREATE INDEX usage_events_billing_idx ON usage_events (tenant_id, metric, occurred_on)
    INCLUDE (quantity) WHERE deleted_on IS NULL;
-- A tenant's whole month across metrics (the usage summary).
CREATE INDEX usage_events_tenant_time_idx ON usage_events (tenant_id, occurred_on)
    INCLUDE (metric, quantity) WHERE deleted_on IS NULL;
CREATE INDEX usage_events_activity_idx ON usage_events (tenant_id, activity_id) WHERE activity_id IS NOT NULL;
