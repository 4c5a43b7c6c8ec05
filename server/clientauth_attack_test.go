package server_test

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/silentrefresh/silentrefresh/server"
)

// TestWrongClientSecretsAreNotLoggedOneByOne: client authentication has
// no rate limit of its own (secrets are 256-bit), so a client hammering
// the token or introspection endpoint with wrong secrets must cost one log
// line per interval, not one per request, and the secret is never logged.
func TestWrongClientSecretsAreNotLoggedOneByOne(t *testing.T) {
	var logs server.LogBuffer
	e := newEnv(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	addClients(t, e)
	const guess = "wrong-wrong-wrong-wrong-wrong-wrong-1"
	for range 50 {
		expectError(t, e.postForm("/oauth2/introspect", url.Values{"token": {"x"}}, "Authorization", "Basic "+basic("backend", guess)), 401, "invalid_client")
		expectError(t, e.postForm("/oauth2/token", passwordForm("client_id", "backend", "client_secret", guess)), 401, "invalid_client")
	}
	out := logs.String()
	if lines := strings.Count(out, "\n"); lines > 3 {
		t.Fatalf("%d log lines for 100 wrong client secrets:\n%.2000s", lines, out)
	}
	if strings.Contains(out, guess) {
		t.Fatalf("a client secret is logged:\n%s", out)
	}
}
