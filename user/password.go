package user

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// ErrInvalidCredentials is returned by Authenticate for an unknown user and
// for a wrong password alike.
var ErrInvalidCredentials = errors.New("user: invalid credentials")

// ErrDisabled is returned by Authenticate for a disabled user whose
// password was right. It wraps ErrInvalidCredentials, so that callers
// answer it alike and the client learns nothing more.
var ErrDisabled = fmt.Errorf("%w: account disabled", ErrInvalidCredentials)

// Params are argon2id parameters. DefaultParams follow the OWASP password
// storage recommendation (19 MiB, 2 passes, 1 lane).
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultParams are the parameters HashPassword uses.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}

// MaxPasswordLen bounds the password length accepted, so that hashing cost
// cannot be driven up by huge inputs.
const MaxPasswordLen = 1024

// HashPassword hashes a password with argon2id and DefaultParams, in the PHC
// string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
func HashPassword(password string) (string, error) {
	return HashPasswordParams(password, DefaultParams)
}

// HashPasswordParams is HashPassword with explicit parameters.
func HashPasswordParams(password string, p Params) (string, error) {
	if password == "" {
		return "", errors.New("user: password is empty")
	}
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("user: password is longer than %d bytes", MaxPasswordLen)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("user: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches a hash made by
// HashPassword. A malformed hash is an error.
func VerifyPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errors.New("user: password hash is not argon2id PHC format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("user: unsupported argon2 version %q", parts[2])
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, fmt.Errorf("user: bad argon2 parameters %q: %w", parts[3], err)
	}
	if p.Memory == 0 || p.Memory > 1<<20 || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return false, fmt.Errorf("user: argon2 parameters out of range %q", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("user: bad salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false, errors.New("user: bad hash")
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

var (
	dummyOnce sync.Once
	dummyHash string
)

// Authenticate looks up username and checks password. An unknown user and
// a wrong password both return ErrInvalidCredentials, after the same
// amount of hashing work, so the answer does not tell which it was. A
// disabled user with the right password returns ErrDisabled. It hashes
// nothing once ctx has ended, and returns ctx's error instead. Hashing
// takes tens of MiB and a core for tens of milliseconds: callers serving
// many requests bound how many run at once. Its errors never hold the
// username, which may be a password typed into the wrong field.
func Authenticate(ctx context.Context, st Store, username, password string) (User, error) {
	u, err := st.UserByName(ctx, username)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("user: look up the user: %w", err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return User{}, fmt.Errorf("user: authenticate: %w", cerr)
	}
	if errors.Is(err, ErrNotFound) {
		dummyOnce.Do(func() { dummyHash, _ = HashPassword("not a real password") })
		_, _ = VerifyPassword(dummyHash, password)
		return User{}, ErrInvalidCredentials
	}
	ok, err := VerifyPassword(u.PasswordHash, password)
	if err != nil {
		return User{}, fmt.Errorf("user: verify the password: %w", err)
	}
	if !ok {
		return User{}, ErrInvalidCredentials
	}
	if u.Disabled() {
		return User{}, ErrDisabled
	}
	return u, nil
}

// ValidUsername reports whether name is acceptable as a username: 1 to 64
// bytes of printable characters without spaces.
func ValidUsername(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("user: username must be 1 to 64 bytes")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("user: username %q contains a space or control character", name)
		}
	}
	return nil
}
