-- Invalidation of the replicas' in-memory caches of families (the session
-- check) and clients (the token endpoint): every change to a row those
-- lookups read sends a notification on the channel silentrefresh_invalidate
-- when its transaction commits. The payload is the table's schema, '|', and
-- then 'f:<family id>', 'c:<client_id>', or '*' for "everything" (TRUNCATE,
-- or a key too long for a payload). The schema lets stores of several
-- schemas share one database without acting on each other's notifications.
--
-- The triggers fire for every writer, the store's own statements and an
-- operator's SQL alike, and are ENABLE ALWAYS so that they fire under
-- session_replication_role = replica too. Rows deleted by a cascade fire
-- their table's row triggers as well (no foreign key points from families
-- or clients to another table today).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION silentrefresh_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prefix  text := TG_TABLE_SCHEMA || '|';
    kind    text := CASE TG_TABLE_NAME WHEN 'families' THEN 'f:' ELSE 'c:' END;
    keys    text[] := '{}';
    k       text;
    payload text;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('silentrefresh_invalidate', prefix || '*');
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        keys := ARRAY[NEW.id];
    ELSIF TG_OP = 'DELETE' THEN
        keys := ARRAY[OLD.id];
    ELSIF NEW.id IS DISTINCT FROM OLD.id THEN
        keys := ARRAY[OLD.id, NEW.id];
    ELSE
        keys := ARRAY[NEW.id];
    END IF;
    FOREACH k IN ARRAY keys LOOP
        payload := prefix || kind || k;
        IF octet_length(payload) >= 8000 THEN -- pg_notify's limit
            payload := prefix || '*';
        END IF;
        PERFORM pg_notify('silentrefresh_invalidate', payload);
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- families: what Family reads changes only by UPDATE (a revocation) or
-- DELETE (the sweep of expired families). An INSERT changes no answer a
-- cache holds, since a family that was not found is not remembered.
CREATE TRIGGER families_invalidate_update
    AFTER UPDATE ON families
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION silentrefresh_invalidate();
CREATE TRIGGER families_invalidate_delete
    AFTER DELETE ON families
    FOR EACH ROW EXECUTE FUNCTION silentrefresh_invalidate();
CREATE TRIGGER families_invalidate_truncate
    AFTER TRUNCATE ON families
    FOR EACH STATEMENT EXECUTE FUNCTION silentrefresh_invalidate();
ALTER TABLE families ENABLE ALWAYS TRIGGER families_invalidate_update;
ALTER TABLE families ENABLE ALWAYS TRIGGER families_invalidate_delete;
ALTER TABLE families ENABLE ALWAYS TRIGGER families_invalidate_truncate;

-- clients: an unknown client_id is remembered too, so an INSERT notifies.
CREATE TRIGGER clients_invalidate
    AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION silentrefresh_invalidate();
CREATE TRIGGER clients_invalidate_truncate
    AFTER TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION silentrefresh_invalidate();
ALTER TABLE clients ENABLE ALWAYS TRIGGER clients_invalidate;
ALTER TABLE clients ENABLE ALWAYS TRIGGER clients_invalidate_truncate;

-- +goose Down
DROP TRIGGER clients_invalidate_truncate ON clients;
DROP TRIGGER clients_invalidate ON clients;
DROP TRIGGER families_invalidate_truncate ON families;
DROP TRIGGER families_invalidate_delete ON families;
DROP TRIGGER families_invalidate_update ON families;
DROP FUNCTION silentrefresh_invalidate();
