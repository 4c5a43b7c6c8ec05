package server_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/server"
)

// TestPerAddressLimitHoldsAcrossAnIPv6Prefix: one IPv6 host or customer
// holds a whole /64, so rotating the interface bits must not buy a fresh
// per-address (or per username and address) budget for each guess.
func TestPerAddressLimitHoldsAcrossAnIPv6Prefix(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.LoginLimitPerAddress = server.LoginLimit{Burst: 3, Every: time.Hour}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	})
	for i := range 3 {
		expectError(t, e.loginFrom(fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("u%d", i), "guess"), 401, "invalid_credentials")
	}
	expectError(t, e.loginFrom("2001:db8:1:2:dead:beef:0:1", "u9", "guess"), 429, "rate_limited")
	// Another /64 has its own budget; an IPv4 address is itself.
	expectError(t, e.loginFrom("2001:db8:1:3::1", "u9", "guess"), 401, "invalid_credentials")
	expectError(t, e.loginFrom("192.0.2.1", "u9", "guess"), 401, "invalid_credentials")
	expectError(t, e.loginFrom("::ffff:192.0.2.2", "u9", "guess"), 401, "invalid_credentials")
}
