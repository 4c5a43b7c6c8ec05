package main

import (
	"fmt"
	"io"

	"github.com/silentrefresh/silentrefresh/internal/loadgen"
)

// writeSummary prints the summary of a demo or load run: one JSON object
// with asJSON, else the table, and where the timeline went.
func writeSummary(out io.Writer, s loadgen.Summary, asJSON bool, timeline string) error {
	if asJSON {
		return s.WriteJSON(out)
	}
	if err := s.WriteTable(out); err != nil {
		return err
	}
	if timeline != "" {
		fmt.Fprintf(out, "\ntimeline written to %s\n", timeline)
	}
	return nil
}
