package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/silentrefresh/silentrefresh/session"
)

// checkChains verifies that every listed family is alive and one linear
// chain: generations 0..n-1 once each, every token but the last consumed
// with the next one as its successor, the last one unconsumed. A fork (two
// successors of one token, or two tokens of one generation) fails.
func checkChains(t *testing.T, st session.Store, familyIDs []string) (tokens int) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	for _, id := range familyIDs {
		f, err := st.Family(ctx, id)
		if err != nil {
			t.Errorf("family %s: %v", id, err)
			continue
		}
		if f.Revoked() {
			t.Errorf("family %s revoked (%s)", id, f.RevokeReason)
		}
		toks, err := st.FamilyTokens(ctx, id)
		if err != nil {
			t.Errorf("family %s tokens: %v", id, err)
			continue
		}
		if err := linear(toks); err != nil {
			t.Errorf("family %s is not one linear chain: %v", id, err)
		}
		tokens += len(toks)
	}
	return tokens
}

func linear(toks []session.RefreshToken) error {
	if len(toks) == 0 {
		return fmt.Errorf("no tokens")
	}
	for i, tok := range toks {
		if tok.Generation != int64(i) {
			return fmt.Errorf("token %d has generation %d (a fork or a gap)", i, tok.Generation)
		}
		last := i == len(toks)-1
		switch {
		case last && tok.Consumed():
			return fmt.Errorf("the newest token (generation %d) is consumed, its successor missing", i)
		case !last && !tok.Consumed():
			return fmt.Errorf("generation %d is not consumed but has a successor", i)
		case !last && !bytes.Equal(tok.SuccessorHash, toks[i+1].Hash):
			return fmt.Errorf("generation %d's successor is not generation %d", i, i+1)
		}
	}
	return nil
}
