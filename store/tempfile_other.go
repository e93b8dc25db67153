//go:build !linux

package store

import "os"

// createTemp opens a named temp file in dir (no O_TMPFILE here).
func createTemp(dir string) (f *os.File, anon bool, err error) {
	f, err = os.CreateTemp(dir, "ingest-*.dcm")
	return f, false, err
}

// linkFile hard-links src to dst, failing (fs.ErrExist) when dst exists.
func linkFile(src, dst string) error { return os.Link(src, dst) }
