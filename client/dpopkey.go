package client

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DPoPKeyPath returns the path of the file that keeps the session's DPoP
// key beside the tokens: PATH.dpop-key.
func (s *FileStore) DPoPKeyPath() string { return s.path + ".dpop-key" }

// DPoPKey returns the private key the session in this file proves
// possession of (Config.DPoP), creating it on first use: an ECDSA P-256
// key in PKCS #8 PEM at DPoPKeyPath, mode 0600, read and created under
// the store's lock, so that every process sharing the file signs with the
// same key and can refresh the session they share. Clear leaves the key:
// the next login binds its session to it again.
func (s *FileStore) DPoPKey(ctx context.Context) (crypto.Signer, error) {
	unlock, err := s.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	path := s.DPoPKeyPath()
	b, err := os.ReadFile(path)
	if err == nil {
		return parseDPoPKey(path, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("client: file store: read DPoP key: %w", err)
	}
	k, err := GenerateDPoPKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("client: file store: encode DPoP key: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("client: file store: save DPoP key: %w", err)
	}
	return k, nil
}

func parseDPoPKey(path string, b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("client: file store: %s is not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("client: file store: %s: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("client: file store: %s holds a %T, not a signing key", path, k)
	}
	return signer, nil
}
