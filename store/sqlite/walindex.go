package sqlite

import (
	"bytes"
	"os"
)

// The WAL-index header that SQLite keeps in the shared-memory file beside
// the database (PATH-shm) tells whether anything committed: every
// connection that commits rewrites it before its commit returns — a change
// counter, the last valid frame, the frame checksums and the salts of the
// log — and it is written twice, the second copy first, so that a reader
// that finds both copies equal has a consistent one. A new read transaction
// takes its snapshot from that header, so while the header is unchanged no
// reader can see anything that a read made earlier did not. Reading it is
// one pread of 96 bytes, against a statement on a pooled connection.
//
// The caches of families (familycache.go) and of clients (clientcache.go)
// share one walIndex.

// walHeaderSize is the size of one copy of the WAL-index header.
const walHeaderSize = 48

// walHeader is one copy of the WAL-index header: the state of the log.
type walHeader [walHeaderSize]byte

// walIndex reads the WAL-index header of one database. A nil *walIndex
// reads nothing: its state is never ok.
type walIndex struct {
	shm *os.File // PATH-shm, read-only
}

// openWALIndex opens the shared-memory file of the database at abs, or
// returns nil if it cannot be opened or its header cannot be read.
func openWALIndex(abs string) *walIndex {
	f, err := os.Open(abs + "-shm")
	if err != nil {
		return nil
	}
	w := &walIndex{shm: f}
	if _, ok := w.state(); !ok {
		f.Close()
		return nil
	}
	return w
}

func (w *walIndex) close() {
	if w != nil {
		w.shm.Close()
	}
}

// state returns the current WAL-index header, or false if it cannot be
// read consistently (being rewritten, not a WAL database, the file closed
// or unreadable).
func (w *walIndex) state() (h walHeader, ok bool) {
	if w == nil {
		return h, false
	}
	var b [2 * walHeaderSize]byte
	if n, err := w.shm.ReadAt(b[:], 0); err != nil || n != len(b) {
		return h, false
	}
	const isInit = 12 // offset of the header's isInit byte
	if b[isInit] == 0 || !bytes.Equal(b[:walHeaderSize], b[walHeaderSize:]) {
		return h, false
	}
	copy(h[:], b[:walHeaderSize])
	return h, true
}
