package claims

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  Set
		ok   bool
		want string // in the error
	}{
		{"empty", nil, true, ""},
		{"roles", Set{"roles": []any{"admin"}, "tenant": "acme"}, true, ""},
		{"sub", Set{"sub": "root"}, false, `claim "sub" is reserved`},
		{"scope", Set{"scope": "admin"}, false, `claim "scope" is reserved`},
		{"cnf", Set{"cnf": map[string]any{}}, false, `"cnf" is reserved`},
		{"client_id", Set{"client_id": "x"}, false, `"client_id" is reserved`},
		{"space", Set{"a b": 1}, false, "contains a space"},
		{"empty name", Set{"": 1}, false, "empty claim name"},
		{"long name", Set{strings.Repeat("n", MaxNameLen+1): 1}, false, "longer than"},
		{"too large", Set{"blob": strings.Repeat("x", MaxSize)}, false, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.set)
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
	for _, r := range Reserved {
		if Validate(Set{r: "x"}) == nil {
			t.Errorf("reserved claim %q accepted", r)
		}
	}
}

func TestParseAssignment(t *testing.T) {
	for in, want := range map[string]any{
		"tenant=acme":        "acme",
		"roles=admin,editor": []any{"admin", "editor"},
		"roles=[admin]":      []any{"admin"},
		"roles=[]":           []any{},
		"level=json:3":       float64(3),
		"x=json:{\"a\":[1]}": map[string]any{"a": []any{float64(1)}},
		"empty=":             "",
	} {
		_, v, err := ParseAssignment(in)
		if err != nil || !reflect.DeepEqual(v, want) {
			t.Errorf("ParseAssignment(%q) = %#v, %v; want %#v", in, v, err, want)
		}
	}
	for _, in := range []string{"noequals", "=x", "sub=root", "iss=x", "a b=c", "x=json:{"} {
		if _, _, err := ParseAssignment(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseAssignment(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestMergePickRoundTrip(t *testing.T) {
	m := Merge(Set{"a": "1", "b": "1"}, nil, Set{"b": "2"})
	if !reflect.DeepEqual(m, Set{"a": "1", "b": "2"}) {
		t.Fatalf("Merge = %v", m)
	}
	if Merge(nil, Set{}) != nil {
		t.Fatal("Merge of empty sets is not nil")
	}
	p := Pick(map[string]any{"roles": []any{"x"}, "sub": "y", "email": "e"}, []string{"roles", "tenant"})
	if !reflect.DeepEqual(p, Set{"roles": []any{"x"}}) {
		t.Fatalf("Pick = %v", p)
	}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("Decode(Encode) = %v, %v", back, err)
	}
	if s, err := Decode([]byte("{}")); err != nil || s != nil {
		t.Fatalf("Decode({}) = %v, %v", s, err)
	}
}
