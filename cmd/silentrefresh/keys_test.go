package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/silentrefresh/silentrefresh/admin"
	"github.com/silentrefresh/silentrefresh/token"
)

type keyList struct{ Keys []admin.KeyJSON }

func (e *opEnv) keys() []admin.KeyJSON {
	e.t.Helper()
	var l keyList
	e.cliJSON("", &l, "keys", "list")
	return l.Keys
}

// jwksKIDs returns the key IDs the server publishes.
func (e *opEnv) jwksKIDs() []string {
	e.t.Helper()
	res, err := http.Get(e.url + "/.well-known/jwks.json")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.Kid)
	}
	return ids
}

func TestKeysCommands(t *testing.T) {
	e := newOpEnv(t, "alice")
	first := e.keys()
	if len(first) != 1 || first[0].Stage != admin.StageSigning || first[0].Algorithm != token.AlgEdDSA {
		t.Fatalf("keys list on a new server = %+v", first)
	}
	table, err := e.cli("", "keys", "list", "--db", e.dsn)
	if err != nil || !strings.Contains(table, "STAGE") || !strings.Contains(table, first[0].ID) {
		t.Errorf("keys list table = %q, %v", table, err)
	}
	g, _ := e.login("alice", "alice-pw")

	var rot struct {
		New     admin.KeyJSON
		Retired []admin.KeyJSON
	}
	e.cliJSON("", &rot, "keys", "rotate")
	if rot.New.Stage != admin.StageSigning || rot.New.ID == first[0].ID || len(rot.Retired) != 1 ||
		rot.Retired[0].ID != first[0].ID || rot.Retired[0].Stage != admin.StageRetired || rot.Retired[0].RemovableAt == nil {
		t.Fatalf("keys rotate = %+v", rot)
	}
	// The retired key still verifies the tokens it signed.
	e.works(g)
	if ks := e.keys(); len(ks) != 2 || ks[0].ID != rot.New.ID || ks[1].Stage != admin.StageRetired {
		t.Errorf("keys list after rotate = %+v", ks)
	}
	// Nothing is removable yet: retire deletes nothing.
	var ret struct{ Retired []admin.KeyJSON }
	e.cliJSON("", &ret, "keys", "retire")
	if len(ret.Retired) != 0 || len(e.keys()) != 2 {
		t.Errorf("keys retire right after a rotation deleted %+v", ret.Retired)
	}
	// A key superseded long ago is removable, and retire deletes it alone:
	// "ancient" was superseded by "old" 47 hours ago, "old" by the first
	// key just now.
	old := func(id string, age time.Duration) {
		k, err := token.GenerateKey(time.Now().Add(-age))
		if err != nil {
			t.Fatal(err)
		}
		k.ID = id
		if err := e.st.AddSigningKey(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	old("ancient", 48*time.Hour)
	old("old", 47*time.Hour)
	e.cliJSON("", &ret, "keys", "retire")
	if len(ret.Retired) != 1 || ret.Retired[0].ID != "ancient" {
		t.Errorf("keys retire = %+v, want the ancient key alone", ret.Retired)
	}
	// --force deletes the retired key at once; its tokens stop verifying
	// and it leaves the JWKS.
	e.cliJSON("", &ret, "keys", "retire", "--force", "--key", first[0].ID)
	if len(ret.Retired) != 1 || ret.Retired[0].ID != first[0].ID {
		t.Errorf("keys retire --force = %+v", ret.Retired)
	}
	if ks := e.keys(); len(ks) != 2 || ks[0].ID != rot.New.ID || ks[1].ID != "old" {
		t.Errorf("keys after the forced retire = %+v", ks)
	}
	if kids := e.jwksKIDs(); len(kids) != 2 || strings.Contains(strings.Join(kids, " "), first[0].ID) {
		t.Errorf("JWKS after the forced retire = %v", kids)
	}
	// --force without --key deletes every retired key.
	e.cliJSON("", &ret, "keys", "retire", "--force")
	if len(ret.Retired) != 1 || ret.Retired[0].ID != "old" {
		t.Errorf("keys retire --force = %+v, want old", ret.Retired)
	}
	if ks := e.keys(); len(ks) != 1 || ks[0].ID != rot.New.ID {
		t.Errorf("keys at the end = %+v", ks)
	}
}

func TestKeysCommandsBadInput(t *testing.T) {
	e := newOpEnv(t, "alice")
	var rot struct{ New admin.KeyJSON }
	e.cliJSON("", &rot, "keys", "rotate")
	before := e.keys()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"keys"}, "subcommand is required"},
		{[]string{"keys", "shuffle", "--db", e.dsn}, `unknown subcommand "shuffle"`},
		{[]string{"keys", "retire", "--db", e.dsn, "--key", before[1].ID}, "--key needs --force"},
		{[]string{"keys", "retire", "--db", e.dsn, "--force", "--key", rot.New.ID}, "rotate before retiring"},
		{[]string{"keys", "retire", "--db", e.dsn, "--force", "--key", before[1].ID, "--key", "no-such-key"}, "not found"},
		{[]string{"keys", "rotate", "--db", e.dsn, "--access-ttl", "0s"}, "positive duration"},
		{[]string{"keys", "list", "--db", e.dsn, "--force"}, "flag provided but not defined"},
		{[]string{"keys", "rotate", "--db", e.dsn, "now"}, "unexpected arguments"},
		{[]string{"keys", "rotate", "--db", "sqlite:" + t.TempDir() + "/none.db"}, "no database there"},
	}
	for _, tc := range tests {
		out, err := e.cli("", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v = %q, %v; want an error saying %q", tc.args, out, err, tc.want)
		}
		after := e.keys()
		if len(after) != len(before) {
			t.Fatalf("%v changed the keys: %+v, was %+v", tc.args, after, before)
		}
		for i := range after {
			if after[i].ID != before[i].ID {
				t.Fatalf("%v changed the keys: %+v, was %+v", tc.args, after, before)
			}
		}
	}
}
