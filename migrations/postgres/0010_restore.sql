-- strata: compatible-with-older-binaries
-- Tenant import (`strata tenant import`) restores rows in the states they
-- were exported in, which the state machines would refuse as creations.
-- The transition trigger lets them through only when the transaction says
-- `strata.restoring = on` AND the connected role is (a member of) the
-- tables' owner: the serving role can set the setting but not pass the
-- role check, so nothing it can execute switches the state machines off.

CREATE OR REPLACE FUNCTION strata_enforce_transition() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    old_status text;
    allowed    text[];
BEGIN
    -- A tenant import restores rows as they were (an accepted contract, a
    -- finished activity): only the migration role (the administrative
    -- path, owner of the tables) may say so. The function runs as its
    -- owner, so the connected role is session_user.
    IF current_setting('strata.restoring', true) = 'on'
       AND pg_has_role(session_user, (SELECT c.relowner FROM pg_class c
                                      WHERE c.oid = TG_RELID), 'MEMBER') THEN
        RETURN NEW;
    END IF;
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

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION strata_enforce_transition() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
