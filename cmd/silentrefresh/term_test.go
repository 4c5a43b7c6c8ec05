package main

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// A character device that is not a terminal, a pipe and a buffer all get
// the plain live view.
func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{os.DevNull: null, "a pipe": w, "a buffer": &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}
