package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// A Store keeps the tokens of one session. Implementations must be safe for
// concurrent use.
type Store interface {
	// Load returns the stored tokens, or zero Tokens when there are none.
	Load(ctx context.Context) (Tokens, error)
	// Save replaces the stored tokens.
	Save(ctx context.Context, t Tokens) error
	// Clear removes the stored tokens.
	Clear(ctx context.Context) error
}

// A Locker is a Store that several Clients (or processes) share. The Client
// holds the lock around every refresh and re-reads the Store after taking
// it, so that only one of them refreshes and the others use the tokens it
// saved.
type Locker interface {
	Store
	// Lock blocks until the lock is held or ctx is done, and returns the
	// function that releases it.
	Lock(ctx context.Context) (unlock func(), err error)
}

var (
	_ Locker = (*MemoryStore)(nil)
	_ Locker = (*FileStore)(nil)
)

// MemoryStore keeps tokens in memory. Clients sharing one MemoryStore
// refresh once between them.
type MemoryStore struct {
	sem chan struct{} // the Locker's lock: held while full

	mu sync.Mutex // guards t
	t  Tokens
}

// NewMemoryStore returns a MemoryStore holding t.
func NewMemoryStore(t Tokens) *MemoryStore {
	return &MemoryStore{sem: make(chan struct{}, 1), t: t}
}

// Load returns the tokens held.
func (s *MemoryStore) Load(context.Context) (Tokens, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t, nil
}

// Save replaces the tokens held.
func (s *MemoryStore) Save(_ context.Context, t Tokens) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = t
	return nil
}

// Clear forgets the tokens.
func (s *MemoryStore) Clear(context.Context) error {
	return s.Save(context.Background(), Tokens{})
}

// Lock takes the store's lock.
func (s *MemoryStore) Lock(ctx context.Context) (func(), error) {
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("client: memory store lock: %w", ctx.Err())
	}
}

// FileStore keeps tokens in a JSON file readable only by its owner (mode
// 0600). Writes are atomic (a temporary file, fsync, rename, fsync of the
// directory), so a crash leaves the old tokens or the new ones, never a
// mix. Its lock is an OS file lock on PATH.lock, so Clients in several
// processes (a CLI run twice, a service with workers) share one session
// without ever presenting the same refresh token twice.
type FileStore struct {
	path string
	// sem serialises lock holders within this process: one flock.Flock
	// cannot be held twice, and it does not exclude its own process.
	sem  chan struct{}
	lock *flock.Flock
}

// NewFileStore returns a FileStore over the file at path. The file need not
// exist yet; its directory must.
func NewFileStore(path string) *FileStore {
	return &FileStore{
		path: path,
		sem:  make(chan struct{}, 1),
		lock: flock.New(path+".lock", flock.SetPermissions(0o600)),
	}
}

// Path returns the file's path.
func (s *FileStore) Path() string { return s.path }

// Load reads the file; a missing or empty file holds no tokens.
func (s *FileStore) Load(context.Context) (Tokens, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Tokens{}, nil
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("client: file store: read: %w", err)
	}
	if len(b) == 0 {
		return Tokens{}, nil
	}
	var t Tokens
	if err := json.Unmarshal(b, &t); err != nil {
		return Tokens{}, fmt.Errorf("client: file store: decode %s: %w", s.path, err)
	}
	return t, nil
}

// Save writes t to the file atomically.
func (s *FileStore) Save(_ context.Context, t Tokens) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("client: file store: encode: %w", err)
	}
	b = append(b, '\n')
	if err := writeFileAtomic(s.path, b); err != nil {
		return fmt.Errorf("client: file store: %w", err)
	}
	return nil
}

// Clear removes the file.
func (s *FileStore) Clear(context.Context) error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("client: file store: clear: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("client: file store: clear: %w", err)
	}
	return nil
}

// lockPoll is how often a blocked Lock retries the OS lock.
const lockPoll = 5 * time.Millisecond

// Lock takes the OS file lock on PATH.lock, waiting until ctx is done.
func (s *FileStore) Lock(ctx context.Context) (func(), error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("client: file store lock: %w", ctx.Err())
	}
	ok, err := s.lock.TryLockContext(ctx, lockPoll)
	if err == nil && !ok {
		err = ctx.Err()
	}
	if err != nil {
		<-s.sem
		return nil, fmt.Errorf("client: file store lock %s: %w", s.lock.Path(), err)
	}
	return func() {
		_ = s.lock.Unlock()
		<-s.sem
	}, nil
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return nil
}

// syncDir makes a rename or removal in dir durable. Systems that cannot open
// a directory for syncing (Windows) are skipped.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
