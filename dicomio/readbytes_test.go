package dicomio

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

// ReadInstanceBytes must answer exactly as ReadInstance, and leave its
// input untouched.
func TestReadInstanceBytesMatchesReadInstance(t *testing.T) {
	root := testenv.SharedDICOM(t)
	for _, dir := range []string{"ct-head-5mm", "robustness"} {
		files, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			rel := filepath.Join(dir, f.Name())
			t.Run(rel, func(t *testing.T) {
				data := testenv.Fixture(t, rel)
				orig := bytes.Clone(data)
				want, werr := ReadInstance(bytes.NewReader(data), int64(len(data)))
				got, gerr := ReadInstanceBytes(data)
				if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
					t.Fatalf("errors differ: ReadInstance %v, ReadInstanceBytes %v", werr, gerr)
				}
				if !reflect.DeepEqual(want, got) {
					t.Errorf("instances differ:\n%+v\n%+v", want, got)
				}
				if !bytes.Equal(data, orig) {
					t.Error("ReadInstanceBytes modified its input")
				}
			})
		}
	}
}
