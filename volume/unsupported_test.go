package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
)

// TestUnsupportedSyntaxReported: in a build without a JPEG 2000 decoder
// (pure Go, as `make test` also runs this package), ct-head-5mm.j2kr still
// loads as one stack, every slice is reported undecodable with the reason,
// Choose passes it over, and Assemble refuses it naming the syntax; no
// volume comes out in silence. With the decoder the conformance tests
// cover the same folder.
func TestUnsupportedSyntaxReported(t *testing.T) {
	const j2k = "1.2.840.10008.1.2.4.90"
	if _, ok := codec.Lookup(j2k); ok {
		t.Skip("this build decodes JPEG 2000 (TestConformanceCTHead covers ct-head-5mm.j2kr)")
	}
	col, err := LoadDir(os.DirFS(filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm.j2kr")), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(col.Series) != 1 || len(col.Series[0].Stacks) != 1 {
		t.Fatalf("want one series of one stack, got %d series", len(col.Series))
	}
	st := col.Series[0].Stacks[0]
	if st.Slices != 28 {
		t.Errorf("%d slices, want 28: an undecodable syntax must not lose slices", st.Slices)
	}
	undecodable := 0
	for _, w := range st.Warnings {
		if w.Code == WarnUndecodable {
			undecodable++
			if !strings.Contains(w.Message, "cannot be decoded") {
				t.Errorf("warning %q does not say why", w.Message)
			}
		}
	}
	if undecodable == 0 {
		t.Errorf("no %s warning: %v", WarnUndecodable, st.Warnings)
	}
	if _, _, err := Choose(col); !errors.Is(err, ErrNoStack) {
		t.Errorf("Choose: %v, want ErrNoStack", err)
	}
	v, err := st.Assemble(AssembleOptions{})
	if !errors.Is(err, ErrUndecodable) || v != nil || !strings.Contains(err.Error(), "JPEG 2000") {
		t.Errorf("Assemble: %v (volume %v), want ErrUndecodable naming JPEG 2000", err, v != nil)
	}
}
