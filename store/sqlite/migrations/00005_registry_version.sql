-- The version of the client registry: a counter that every change to the
-- clients table increments in the transaction of the change, whoever makes
-- it (this store, another process on the file, an operator's sqlite3
-- shell). The store remembers the clients it read while the version is
-- unchanged (clientcache.go).

-- +goose Up
CREATE TABLE registry_version (
    one     INTEGER NOT NULL PRIMARY KEY CHECK (one = 1), -- a single row
    version INTEGER NOT NULL
) STRICT;

INSERT INTO registry_version (one, version) VALUES (1, 0);

-- +goose StatementBegin
CREATE TRIGGER clients_insert_version AFTER INSERT ON clients
BEGIN
    UPDATE registry_version SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER clients_update_version AFTER UPDATE ON clients
BEGIN
    UPDATE registry_version SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER clients_delete_version AFTER DELETE ON clients
BEGIN
    UPDATE registry_version SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER clients_delete_version;
DROP TRIGGER clients_update_version;
DROP TRIGGER clients_insert_version;
DROP TABLE registry_version;
