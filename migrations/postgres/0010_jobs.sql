-- strata: compatible-with-older-binaries
-- Background jobs that must run on one instance at a time: each job's row
-- is its lease (holder, lease_until), renewed by the holder while it lives;
-- an expired lease may be taken by any instance in one UPDATE, which works
-- through PgBouncer (no session state). Runs are recorded for
-- /admin/jobs and for the tests that prove one runner at a time.
-- Only the migration role (the administrative path) reads or writes them:
-- the runner grants nothing on strata_* tables.

CREATE TABLE strata_jobs (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    holder           text NULL,
    lease_until      timestamptz NOT NULL DEFAULT now(),
    next_run_on      timestamptz NOT NULL DEFAULT now(),
    runs             bigint NOT NULL DEFAULT 0,
    last_holder      text NULL,
    last_started_on  timestamptz NULL,
    last_finished_on timestamptz NULL,
    last_ok          boolean NULL,
    last_report      jsonb NULL
);

CREATE TABLE strata_job_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL REFERENCES strata_jobs (name),
    holder       text NOT NULL,
    started_on   timestamptz NOT NULL,
    finished_on  timestamptz NOT NULL,
    ok           boolean NOT NULL,
    report       jsonb NOT NULL
);
CREATE INDEX strata_job_runs_name_idx ON strata_job_runs (name, started_on DESC);

ALTER TABLE strata_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY strata_jobs_owner ON strata_jobs TO CURRENT_USER USING (true) WITH CHECK (true);
ALTER TABLE strata_job_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_job_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY strata_job_runs_owner ON strata_job_runs TO CURRENT_USER USING (true) WITH CHECK (true);
