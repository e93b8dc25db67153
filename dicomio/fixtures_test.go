package dicomio

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedDICOM returns the path of ../shared/dicom (relative to the
// repository root), looking upwards from the package directory. It skips
// the test when the fixtures are absent, and fails it under CI=true.
func sharedDICOM(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		tb.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "..", "shared", "dicom")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("../shared/dicom not found (required under CI=true)")
	}
	tb.Skip("skipping: DICOM fixtures ../shared/dicom not found next to the repository")
	return ""
}

// fixture reads one file under ../shared/dicom.
func fixture(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDICOM(tb), rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
