package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestPrefixList(t *testing.T) {
	var l prefixList
	for _, v := range []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32, ::1", "10.1.2.3/16"} {
		if err := l.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if got, want := l.String(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,::1/128,10.1.0.0/16"; got != want {
		t.Fatalf("prefixes %s, want %s", got, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0.0/8/8"} {
		if err := l.Set(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Set(%q) = %v; want an error naming it", bad, err)
		}
	}
}

func TestServeRefusesABadTrustedProxy(t *testing.T) {
	var out, errOut bytes.Buffer
	err := runServe(context.Background(), []string{"--trusted-proxy", "not-a-cidr", "--db", "sqlite:" + t.TempDir() + "/x.db"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error()+errOut.String(), "not-a-cidr") {
		t.Fatalf("serve with a bad --trusted-proxy: %v\n%s", err, &errOut)
	}
	t.Setenv("SILENTREFRESH_TRUSTED_PROXY", "10.0.0.0/8,nonsense")
	err = runServe(context.Background(), []string{"--db", "sqlite:" + t.TempDir() + "/y.db"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "SILENTREFRESH_TRUSTED_PROXY") {
		t.Fatalf("serve with a bad SILENTREFRESH_TRUSTED_PROXY: %v", err)
	}
}
