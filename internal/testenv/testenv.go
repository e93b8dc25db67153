// Package testenv holds what the project's tests share about their
// environment: where the DICOM fixtures are, and which outside tools
// (dcmtk, cjpeg, dcm2niix) they may run. A missing fixture folder or tool
// skips a test with the reason, except under CI=true, where CI installs
// them (.ci/services.sh) and their absence fails the test.
package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CI reports a run under CI=true.
func CI() bool { return os.Getenv("CI") == "true" }

// FindSharedDICOM returns the path of ../shared/dicom (beside the
// repository root), looking upwards from the current directory, or an
// error wrapping fs.ErrNotExist; for fuzz seeds, which must not skip.
func FindSharedDICOM() (string, error) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "..", "shared", "dicom")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("../shared/dicom: %w", fs.ErrNotExist)
		}
		dir = parent
	}
}

// SharedDICOM returns the path of ../shared/dicom (beside the repository
// root), looking upwards from the test's package directory.
func SharedDICOM(tb testing.TB) string {
	tb.Helper()
	p, err := FindSharedDICOM()
	if err == nil {
		return p
	}
	if CI() {
		tb.Fatalf("%v (required under CI=true)", err)
	}
	tb.Skip("skipping: DICOM fixtures ../shared/dicom not found next to the repository")
	return ""
}

// Fixture reads the file rel under ../shared/dicom.
func Fixture(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(SharedDICOM(tb), rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Tool returns the path of the program name, from the Debian package pkg.
func Tool(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if CI() {
			tb.Fatalf("%s (Debian %s) is required under CI=true: %v", name, pkg, err)
		}
		tb.Skipf("skipping: %s (Debian %s) is not installed", name, pkg)
	}
	return p
}

// RedisURL returns the URL of the real redis-server the tests use
// (RADTRIAGE_TEST_REDIS_URL, which .ci/services.sh provides).
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("RADTRIAGE_TEST_REDIS_URL")
	if u == "" {
		if CI() {
			tb.Fatal("RADTRIAGE_TEST_REDIS_URL is not set (a real Redis is required under CI=true)")
		}
		tb.Skip("skipping: RADTRIAGE_TEST_REDIS_URL is not set")
	}
	return u
}
