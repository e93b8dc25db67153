// Package fuzz holds the fuzz targets of package client. They live apart
// from client's own tests, which start a real server: a fuzz build
// instruments every package of the test binary, and instrumenting the
// server's dependencies (Gin, SQLite, pgx) took over four minutes on two
// cores.
package fuzz

import (
	"bytes"
	"os"
	"testing"

	"github.com/radtriage/radtriage/api/client"
)

const ctHead = "../../../../shared/dicom/ct-head-5mm/" // ../shared from the repository root

func FuzzReadIdentity(f *testing.F) {
	for _, name := range []string{"I10", "DIRFILE"} {
		data, err := os.ReadFile(ctHead + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 4096)]) // the headers; the pixel data only slows the fuzzer
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		study, sop, err := client.ReadIdentity(bytes.NewReader(data))
		if err == nil && (study == "" || sop == "") {
			t.Errorf("no error but study %q, sop %q", study, sop)
		}
	})
}
