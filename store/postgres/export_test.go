package postgres

// CacheUsable reports whether the store's caches answer lookups now, for
// the external tests and benchmarks.
func CacheUsable(s *Store) bool { return s.cache != nil && s.cache.usable() }

// CacheQueries returns how many lookups of the store went to the database
// while its caches were on.
func CacheQueries(s *Store) uint64 {
	if s.cache == nil {
		return 0
	}
	return s.cache.queries.Load()
}
