package e2e

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BlobScan is what a walk of a data directory's blob store found.
type BlobScan struct {
	// BySOP maps SOP Instance UID to the paths of blobs holding it.
	BySOP map[string][]string
	// StudyOf maps SOP Instance UID to its Study Instance UID.
	StudyOf map[string]string
	// Other lists files that are not a Part 10 instance with UIDs
	// (temporary or partial files, or files of another kind).
	Other []string
}

// PerStudy counts distinct SOP Instance UIDs per study.
func (s *BlobScan) PerStudy() map[string]int {
	out := map[string]int{}
	for sop := range s.BySOP {
		out[s.StudyOf[sop]]++
	}
	return out
}

// ScanBlobs walks dir (DATA/blobs) and reads the UIDs of every regular
// file from its first 64 KiB.
func ScanBlobs(dir string) (*BlobScan, error) {
	s := &BlobScan{BySOP: map[string][]string{}, StudyOf: map[string]string{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		head := make([]byte, 64<<10)
		n, err := io.ReadFull(f, head)
		f.Close()
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return err
		}
		inst, ok := ParseInstance(head[:n])
		if !ok || strings.Contains(d.Name(), ".tmp") || strings.HasPrefix(d.Name(), ".") {
			s.Other = append(s.Other, path)
			return nil
		}
		s.BySOP[inst.SOP] = append(s.BySOP[inst.SOP], path)
		s.StudyOf[inst.SOP] = inst.Study
		return nil
	})
	return s, err
}
