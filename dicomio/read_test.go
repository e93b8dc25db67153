package dicomio

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

// readBytes runs ReadInstance on b.
func readBytes(b []byte) (*Instance, error) {
	return ReadInstance(bytes.NewReader(b), int64(len(b)))
}

func TestReadInstanceFixtures(t *testing.T) {
	root := testenv.SharedDICOM(t)
	var rows []string
	for _, dir := range []string{"ct-head-5mm", "robustness", "transfer-syntaxes", "enhanced", "wg04", "seg-sr"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			t.Run(rel, func(t *testing.T) {
				b := testenv.Fixture(t, rel)
				in, err := readBytes(b)
				if err != nil {
					rj := AsReject(err)
					if rj == nil {
						t.Fatalf("error is not a *RejectError: %T %v", err, err)
					}
					rows = append(rows, rel+"\tREFUSED\t"+err.Error())
					return
				}
				rows = append(rows, rel+"\tok\t"+in.TransferSyntaxUID+" "+in.Modality)
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(rows)
	t.Logf("fixture results:\n%s", strings.Join(rows, "\n"))
}

func TestReadInstanceCTHead(t *testing.T) {
	root := testenv.SharedDICOM(t)
	entries, err := filepath.Glob(filepath.Join(root, "ct-head-5mm", "I*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range entries {
		rel, _ := filepath.Rel(root, p)
		in, err := readBytes(testenv.Fixture(t, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if !in.HasPixelData || in.Rows != 512 || in.Columns != 512 {
			t.Errorf("%s: pixel data %v %dx%d", rel, in.HasPixelData, in.Rows, in.Columns)
		}
		n++
	}
	if n != 28 {
		t.Errorf("read %d image instances, want 28", n)
	}
	_, err = readBytes(testenv.Fixture(t, "ct-head-5mm/DIRFILE"))
	if rj := AsReject(err); rj == nil || rj.Code != ReasonSOPClassNotSupported {
		t.Errorf("DIRFILE: got %v, want a 0x0122 refusal", err)
	}
}

func TestReadInstanceTruncated(t *testing.T) {
	_, err := readBytes(testenv.Fixture(t, "robustness/MR_truncated.dcm"))
	rj := AsReject(err)
	if rj == nil {
		t.Fatalf("MR_truncated.dcm: got %v, want a *RejectError", err)
	}
	if !strings.Contains(rj.Error(), "truncated") || !strings.Contains(rj.Error(), "bytes") {
		t.Errorf("reason does not name the length problem: %v", rj)
	}
	t.Log(rj)
}
