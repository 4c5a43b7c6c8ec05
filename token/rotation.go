package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A signing key goes through three stages. It is added and published
// (JWKS, every replica's key set) and signs from then on: it is the
// signing key, the newest usable key in the store. When a newer key is
// added it is retired: it signs no more, but still verifies the tokens it
// signed. Once the last of those can have expired it is removable, and
// Retire deletes it. ForceRetire deletes retired keys at once, for a key
// that leaked: the tokens it signed stop verifying although they have not
// expired, and their clients refresh.
//
// No stage is stored: a key's stage follows from its creation time, the
// creation time of the key that superseded it, and the RotationPolicy.
// So Rotate, Keys and Retire may run in different processes (the server,
// the CLI) over the same store.

// ErrSigningKeyInUse is returned by ForceRetire for the key that signs:
// rotate first, so that a new key takes its place.
var ErrSigningKeyInUse = errors.New("token: the key signs new tokens; rotate before retiring it")

// RotationPolicy says how long a retired key must keep verifying.
type RotationPolicy struct {
	// AccessTTL is the longest lifetime of an access token the issuer
	// mints. Required.
	AccessTTL time.Duration
	// Leeway is the most clock skew any verifier of the tokens tolerates.
	// Zero means MaxLeeway, the most a Verifier may be configured with.
	Leeway time.Duration
}

// validate checks p and returns it with its defaults filled in.
func (p RotationPolicy) validate() (RotationPolicy, error) {
	if p.AccessTTL <= 0 {
		return p, fmt.Errorf("token: rotation policy: access token lifetime %v must be positive", p.AccessTTL)
	}
	if p.Leeway < 0 {
		return p, fmt.Errorf("token: rotation policy: leeway %v must not be negative", p.Leeway)
	}
	if p.Leeway == 0 {
		p.Leeway = MaxLeeway
	}
	return p, nil
}

// keep is how long after a key was superseded a token it signed may still
// verify: an issuer on another replica may sign with it for IssuerMaxAge
// more, and such a token lives AccessTTL, plus the verifiers' leeway.
func (p RotationPolicy) keep() time.Duration { return IssuerMaxAge + p.AccessTTL + p.Leeway }

// KeyInfo is a stored signing key and its stage. It holds no secret.
type KeyInfo struct {
	ID        string
	Algorithm string
	CreatedAt time.Time
	// Signing is true for the one key that signs new tokens. The zero
	// RetiredAt and RemovableAt belong to it.
	Signing bool
	// RetiredAt is when a newer key superseded this one; zero for the
	// signing key and for a key the issuer cannot use.
	RetiredAt time.Time
	// RemovableAt is the instant after which no token this key signed can
	// still verify: RetiredAt plus IssuerMaxAge, the policy's AccessTTL
	// and Leeway. A key the issuer cannot use (RetiredAt zero, Signing
	// false) is removable at once.
	RemovableAt time.Time
}

// Removable reports whether Retire would delete the key at now.
func (k KeyInfo) Removable(now time.Time) bool {
	return !k.Signing && !now.Before(k.RemovableAt)
}

// Keys returns the keys in ks with their stages, newest first.
func Keys(ctx context.Context, ks KeyStore, p RotationPolicy) ([]KeyInfo, error) {
	p, err := p.validate()
	if err != nil {
		return nil, err
	}
	keys, err := ks.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: reading signing keys: %w", err)
	}
	return stages(keys, p), nil
}

// stages computes the stage of every key, newest first.
func stages(keys []Key, p RotationPolicy) []KeyInfo {
	keys = slices.Clone(keys)
	slices.SortStableFunc(keys, func(a, b Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	out := make([]KeyInfo, 0, len(keys))
	var successor time.Time // creation of the next newer usable key
	for _, k := range keys {
		info := KeyInfo{ID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt}
		_, usable := publicKeyOf(k)
		switch {
		case !usable:
			// Never signed anything that verifies: removable now.
		case successor.IsZero():
			info.Signing = true
			successor = k.CreatedAt
		default:
			info.RetiredAt = successor
			info.RemovableAt = successor.Add(p.keep())
			successor = k.CreatedAt
		}
		out = append(out, info)
	}
	return out
}

// Rotation is what Rotate did: the key it added, which signs from now on,
// and the keys that it and earlier rotations retired, which still verify
// until their RemovableAt.
type Rotation struct {
	New     KeyInfo
	Retired []KeyInfo
}

// Rotate adds a new signing key to ks, created at now (or just after the
// newest stored key, if the clock stands still or went back, so that it is
// strictly the newest), and returns it with the retired keys.
//
// Rotate only adds: it deletes nothing, so every token signed so far goes
// on verifying. A process that verifies and signs with keys of ks must
// make its verifier learn the new key before its issuer signs with it
// (StoreKeySet.Reload, then Issuer.Reload); replicas that merely share
// the store do so by themselves, since a verifier reloads for an unknown
// key ID at once and an issuer rereads the store after IssuerMaxAge.
func Rotate(ctx context.Context, ks KeyStore, now time.Time, p RotationPolicy) (Rotation, error) {
	p, err := p.validate()
	if err != nil {
		return Rotation{}, err
	}
	old, err := ks.SigningKeys(ctx)
	if err != nil {
		return Rotation{}, fmt.Errorf("token: rotate: reading signing keys: %w", err)
	}
	created := now.UTC().Truncate(time.Microsecond)
	for _, o := range old {
		if !created.After(o.CreatedAt) {
			created = o.CreatedAt.Add(time.Microsecond)
		}
	}
	k, err := GenerateKey(created)
	if err != nil {
		return Rotation{}, fmt.Errorf("token: rotate: %w", err)
	}
	if err := ks.AddSigningKey(ctx, k); err != nil {
		return Rotation{}, fmt.Errorf("token: rotate: adding key: %w", err)
	}
	all := stages(append(old, k), p)
	return Rotation{New: all[0], Retired: all[1:]}, nil
}

// Retire deletes the retired keys of ks that are removable at now (see
// KeyInfo.Removable) and returns them. It never deletes the signing key,
// nor a key whose tokens may still verify.
func Retire(ctx context.Context, ks KeyStore, now time.Time, p RotationPolicy) ([]KeyInfo, error) {
	infos, err := Keys(ctx, ks, p)
	if err != nil {
		return nil, fmt.Errorf("token: retire: %w", err)
	}
	var due []KeyInfo
	for _, k := range infos {
		if k.Removable(now) {
			due = append(due, k)
		}
	}
	return deleteKeys(ctx, ks, due)
}

// ForceRetire deletes retired keys at once, whether or not tokens they
// signed may still verify: the keys named by ids, or every retired key
// when ids is empty. It is for a key that leaked. Access tokens it signed
// are refused from then on (clients holding one refresh), once each
// verifier has reloaded its keys. It refuses the signing key with
// ErrSigningKeyInUse and an unknown ID with ErrKeyNotFound, deleting
// nothing.
func ForceRetire(ctx context.Context, ks KeyStore, ids ...string) ([]KeyInfo, error) {
	// The policy does not matter: every retired key is deleted.
	infos, err := Keys(ctx, ks, RotationPolicy{AccessTTL: time.Second})
	if err != nil {
		return nil, fmt.Errorf("token: force retire: %w", err)
	}
	var due []KeyInfo
	if len(ids) == 0 {
		for _, k := range infos {
			if !k.Signing {
				due = append(due, k)
			}
		}
	}
	for _, id := range ids {
		i := slices.IndexFunc(infos, func(k KeyInfo) bool { return k.ID == id })
		switch {
		case i < 0:
			return nil, fmt.Errorf("token: force retire %q: %w", id, ErrKeyNotFound)
		case infos[i].Signing:
			return nil, fmt.Errorf("token: force retire %q: %w", id, ErrSigningKeyInUse)
		}
		due = append(due, infos[i])
	}
	return deleteKeys(ctx, ks, due)
}

// deleteKeys deletes keys from ks and returns the ones it deleted; a key
// deleted meanwhile by another process counts as deleted.
func deleteKeys(ctx context.Context, ks KeyStore, keys []KeyInfo) ([]KeyInfo, error) {
	var done []KeyInfo
	for _, k := range keys {
		if err := ks.DeleteSigningKey(ctx, k.ID); err != nil && !errors.Is(err, ErrKeyNotFound) {
			return done, fmt.Errorf("token: deleting key %s: %w", k.ID, err)
		}
		done = append(done, k)
	}
	return done, nil
}
