package server

import (
	"net/http/httptest"
	"testing"
)

func TestClientAddr(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:51234":   "192.0.2.7",
		"[2001:db8::1]:443": "2001:db8::1",
		"[::1]:8080":        "::1",
		"[fe80::1%eth0]:9":  "fe80::1%eth0",
		"192.0.2.7":         "192.0.2.7",
		"2001:db8::1":       "2001:db8::1",
		"[2001:db8::2]":     "2001:db8::2",
		"":                  "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", remote, got, want)
		}
	}
}
