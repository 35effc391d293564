-- strata: compatible-with-older-binaries
-- What each boot changed in MongoDB and S3 (collections, validators,
-- indexes, TTLs; buckets, versioning, lifecycle, retention): those stores
-- are reconciled with the embedded definitions rather than migrated step
-- by step, so their history is the list of changes each reconcile made,
-- with the definitions' hash and the strata version that made them.
-- PostgreSQL's own migrations stay in strata_schema_history.
CREATE TABLE strata_store_schema_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store       text NOT NULL CHECK (store IN ('mongo', 's3')),
    definitions text NOT NULL,
    steps       jsonb NOT NULL,
    applied_on  timestamptz NOT NULL DEFAULT now(),
    applied_by  text NOT NULL,
    took_ms     bigint NOT NULL CHECK (took_ms >= 0)
);
CREATE INDEX strata_store_schema_history_store_idx
    ON strata_store_schema_history (store, applied_on DESC);
ALTER TABLE strata_store_schema_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE strata_store_schema_history FORCE ROW LEVEL SECURITY;
CREATE POLICY strata_store_schema_history_owner ON strata_store_schema_history TO CURRENT_USER
    USING (true) WITH CHECK (true);
