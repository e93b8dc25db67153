package store

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// createTemp opens an anonymous file (O_TMPFILE) in dir, or, where the
// file system has no O_TMPFILE, a named temp file. anon reports which.
func createTemp(dir string) (f *os.File, anon bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(anonymous)")), true, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, false, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	f, err = os.CreateTemp(dir, "ingest-*.dcm")
	return f, false, err
}

// linkFile hard-links src to dst, failing (fs.ErrExist) when dst exists.
// src may be a /proc/self/fd link to an anonymous file, which only linkat
// with AT_SYMLINK_FOLLOW can give a name.
func linkFile(src, dst string) error {
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link", Old: src, New: dst, Err: err}
	}
	return nil
}
