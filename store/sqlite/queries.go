package sqlite

// The SQL of the store. Every statement is prepared once per connection at
// Open: writerQueries on the writer, readerQueries on the readers.

const (
	qInsertFamily = `
		INSERT INTO families (id, subject, client_id, created_at, expires_at, revoked_at, revoke_reason, jkt)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

	qInsertToken = `
		INSERT INTO refresh_tokens (hash, family_id, generation, issued_at, expires_at, consumed_at, successor_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?)`

	// qChain reads a token, its family, its successor, the family's
	// attributes and, for live claims, the subject's user claims in one
	// statement.
	qChain = `
		SELECT t.family_id, t.generation, t.issued_at, t.expires_at, t.consumed_at, t.successor_hash,
		       f.subject, f.client_id, f.created_at, f.expires_at, f.revoked_at, f.revoke_reason, f.jkt,
		       s.hash, s.generation, s.issued_at, s.expires_at, s.consumed_at, s.successor_hash,
		       a.family_id IS NOT NULL, COALESCE(a.scope, ''), a.claims, COALESCE(a.live_claims, 1),
		       COALESCE(a.confidential, 0), u.claims
		FROM refresh_tokens t
		JOIN families f ON f.id = t.family_id
		LEFT JOIN refresh_tokens s ON s.hash = t.successor_hash
		LEFT JOIN family_attributes a ON a.family_id = f.id
		LEFT JOIN user_claims u ON u.user_id = f.subject AND COALESCE(a.live_claims, 1)
		WHERE t.hash = ?`

	qConsume = `
		UPDATE refresh_tokens SET consumed_at = ?, successor_hash = ?
		WHERE hash = ? AND consumed_at IS NULL`

	// qRevoke revokes a family unless it is revoked already. Both SET
	// expressions see the old row, and a family already revoked still
	// counts as a changed row, so the row count tells only whether the
	// family exists.
	qRevoke = `
		UPDATE families SET
			revoke_reason = CASE WHEN revoked_at IS NULL THEN ? ELSE revoke_reason END,
			revoked_at = COALESCE(revoked_at, ?)
		WHERE id = ?`

	qFamily = `
		SELECT subject, client_id, created_at, expires_at, revoked_at, revoke_reason, jkt
		FROM families WHERE id = ?`

	qFamilyTokens = `
		SELECT hash, generation, issued_at, expires_at, consumed_at, successor_hash
		FROM refresh_tokens WHERE family_id = ? ORDER BY generation`

	qSecret = `SELECT value FROM secrets WHERE name = ?`

	qInsertSecret = `
		INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`

	// qDeleteExpired deletes one batch; the tokens go by ON DELETE CASCADE.
	qDeleteExpired = `
		DELETE FROM families WHERE id IN (
			SELECT id FROM families WHERE expires_at < ? LIMIT ?)`

	qSigningKeys = `
		SELECT id, algorithm, private_key, created_at
		FROM signing_keys ORDER BY created_at DESC, id DESC`

	qInsertKey = `INSERT INTO signing_keys (id, algorithm, private_key, created_at) VALUES (?, ?, ?, ?)`

	qDeleteKey = `DELETE FROM signing_keys WHERE id = ?`

	qInsertUser = `
		INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (username) DO NOTHING`

	qUser = `SELECT id, username, password_hash, created_at, disabled_at FROM users WHERE username = ?`

	// qPing reads the schema version from the file's header.
	qPing = `PRAGMA schema_version`

	// qDataVersion changes when another connection has committed since
	// this one last read it (chaincache.go).
	qDataVersion = `PRAGMA data_version`

	// The savepoint around each request of a batch (batch.go).
	qSavepoint  = `SAVEPOINT op`
	qRollbackTo = `ROLLBACK TO op`
	qRelease    = `RELEASE op`
)

var writerQueries = []string{
	qInsertFamily, qInsertToken, qChain, qConsume, qRevoke, qSecret, qInsertSecret,
	qDeleteExpired, qInsertKey, qDeleteKey, qInsertUser,
	qLiveSessions, qCountLive, qRevokeLive, qRevokeSubject, qDeleteSpent, // accounts.go
	qSavepoint, qRollbackTo, qRelease, qDataVersion,
}

var readerQueries = []string{qFamily, qFamilyTokens, qSecret, qSigningKeys, qUser, qPing,
	qLiveSessions, qUserByID, qUsers, // accounts.go
}
