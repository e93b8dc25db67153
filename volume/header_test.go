package volume

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/internal/testenv"
)

// noReaderAt hides io.ReaderAt from the files of an fs.FS, so that
// LoadDir reads every file whole.
type noReaderAt struct{ fs.FS }

func (n noReaderAt) Open(name string) (fs.File, error) {
	f, err := n.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if d, ok := f.(fs.ReadDirFile); ok {
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	return struct{ fs.File }{f}, nil
}

// TestLoadByHeader: on os.DirFS, the native CT files are read by header
// alone and Assemble reads their frames into place; the volume is the one
// the whole-file path gives, in both load modes.
func TestLoadByHeader(t *testing.T) {
	dir := filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm")
	assemble := func(fsys fs.FS, opts LoadOptions) (*Collection, *Volume) {
		t.Helper()
		c, err := LoadDir(fsys, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Series) != 1 || len(c.Series[0].Stacks) != 1 {
			t.Fatalf("%d series, want 1 stack (skipped %v)", len(c.Series), c.Skipped)
		}
		v, err := c.Series[0].Stacks[0].Assemble(AssembleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c, v
	}
	_, ref := assemble(noReaderAt{os.DirFS(dir)}, LoadOptions{})
	if ref.Stored == nil {
		t.Fatal("the reference volume has no stored integers")
	}
	for _, opts := range []LoadOptions{{}, {HeadersOnly: true}, {KeepBytes: -1}} {
		c, v := assemble(os.DirFS(dir), opts)
		n := 0
		for _, s := range c.Series[0].Stacks[0].vols[0] {
			if s.file.loc == nil || s.file.data != nil || s.file.px != nil {
				t.Fatalf("%+v: %s was not read by header alone", opts, s.name)
			}
			n++
		}
		if n != 28 {
			t.Fatalf("%d slices, want 28", n)
		}
		if !slices.Equal(v.Stored, ref.Stored) || v.Slope != ref.Slope || v.Intercept != ref.Intercept ||
			v.Size != ref.Size || v.Origin != ref.Origin || v.StoredBits != ref.StoredBits || v.StoredSigned != ref.StoredSigned {
			t.Fatalf("%+v: the volume differs from the whole-file path's", opts)
		}
		if !slices.Equal(v.Values(), ref.Values()) {
			t.Fatalf("%+v: the values differ from the whole-file path's", opts)
		}
	}
}

// TestLoadByHeaderFileChanged: a file cut short between LoadDir and
// Assemble makes Assemble fail with ErrUndecodable naming it.
func TestLoadByHeaderFileChanged(t *testing.T) {
	dir := copyDir(t, filepath.Join(testenv.SharedDICOM(t), "ct-head-5mm"))
	_, ser := loadOne(t, dir)
	p := filepath.Join(dir, "I120")
	b, err := os.ReadFile(p)
	must(t, err)
	must(t, os.WriteFile(p, b[:len(b)-1000], 0o644))
	_, err = ser.Stacks[0].Assemble(AssembleOptions{})
	if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "I120") {
		t.Fatalf("got %v, want ErrUndecodable naming I120", err)
	}
}

// TestUnpackInt16InPlace: converting a frame in its own memory, aligned
// to 8 bytes or not, gives dicomio's values (Pixels.Int32), padding
// replaced, for every 16-bit layout.
func TestUnpackInt16InPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1001 // not a multiple of 4: the word loop and its tail
	raw := make([]byte, 2*n)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	for stored := 1; stored <= 16; stored++ {
		for high := stored - 1; high < 16; high++ {
			for _, signed := range []bool{false, true} {
				// At an 8-byte boundary (64-bit words) and 2 bytes past one.
				off := 0
				if stored%2 == 0 {
					off = 1
				}
				px := &dicomio.Pixels{Rows: 1, Columns: n, Samples: 1, Frames: 1,
					BitsAllocated: 16, BitsStored: stored, HighBit: high, Signed: signed, Data: slices.Clone(raw)}
				// The reference: dicomio's Int32, padding -3..2 replaced.
				want := make([]int16, n)
				okWant := signed || stored <= 15
				vals := make([]int32, n)
				if err := px.Int32(0, vals); err != nil {
					t.Fatal(err)
				}
				for i, v := range vals {
					want[i] = int16(v)
					if v >= -3 && v <= 2 {
						want[i] = -1000
					}
				}
				got := make([]int16, n+1)[off : off+n]
				copy(int16Bytes(got), raw)
				view := *px
				view.Data = int16Bytes(got)
				okGot := unpackInt16(got, &view, 0, true, -3, 2, -1000)
				if okGot != okWant || (okWant && !slices.Equal(got, want)) {
					t.Fatalf("stored %d high %d signed %v: in place %v (%v), copied %v (%v)", stored, high, signed, got[:8], okGot, want[:8], okWant)
				}
			}
		}
	}
}

// BenchmarkUnpackInt16InPlace converts one 512×512 frame of unsigned
// 12-bit values in 16-bit containers in place, as Assemble does after
// reading a frame into the volume.
func BenchmarkUnpackInt16InPlace(b *testing.B) {
	const n = 512 * 512
	dst := make([]int16, n)
	for i := range dst {
		dst[i] = int16(i & 0x0FFF)
	}
	px := &dicomio.Pixels{Rows: 512, Columns: 512, Samples: 1, Frames: 1,
		BitsAllocated: 16, BitsStored: 12, HighBit: 11, Data: int16Bytes(dst)}
	b.SetBytes(2 * n)
	for b.Loop() {
		if !unpackInt16(dst, px, 0, false, 0, 0, 0) {
			b.Fatal("not converted")
		}
	}
}
