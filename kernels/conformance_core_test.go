package kernels

import (
	"errors"
	"testing"
)

// confCore checks buffers: allocation and reuse through the pool, the
// host copies of each type, and refusals of misuse.
func confCore(t *testing.T, b Backend) {
	t.Run("roundtrip", func(t *testing.T) {
		f := []float32{1, -2.5, 3e-8, 65504, -0}
		i := []int16{-32768, -1, 0, 1, 32767}
		u := []uint8{0, 1, 127, 128, 255}
		for _, src := range []any{f, i, u} {
			var dt DType
			var n int
			switch s := src.(type) {
			case []float32:
				dt, n = Float32, len(s)
			case []int16:
				dt, n = Int16, len(s)
			case []uint8:
				dt, n = Uint8, len(s)
			}
			buf, err := b.Alloc(dt, n)
			if err != nil {
				t.Fatal(err)
			}
			if buf.Len() != n || buf.DType() != dt || buf.Bytes() != n*dt.Size() {
				t.Fatalf("Alloc(%v, %d) = %v×%d", dt, n, buf.DType(), buf.Len())
			}
			if err := b.Upload(buf, src); err != nil {
				t.Fatal(err)
			}
			cp, err := b.Alloc(dt, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Copy(cp, buf, n); err != nil {
				t.Fatal(err)
			}
			var got any
			switch dt {
			case Float32:
				g := make([]float32, n)
				err = b.Download(g, cp)
				got = g
			case Int16:
				g := make([]int16, n)
				err = b.Download(g, cp)
				got = g
			case Uint8:
				g := make([]uint8, n)
				err = b.Download(g, cp)
				got = g
			}
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < n; k++ {
				var a, w float64
				switch dt {
				case Float32:
					a, w = float64(got.([]float32)[k]), float64(f[k])
				case Int16:
					a, w = float64(got.([]int16)[k]), float64(i[k])
				case Uint8:
					a, w = float64(got.([]uint8)[k]), float64(u[k])
				}
				if a != w {
					t.Fatalf("%v element %d: %v after upload, copy, download; want %v", dt, k, a, w)
				}
			}
			b.Free(buf)
			b.Free(cp)
		}
	})

	t.Run("fill", func(t *testing.T) {
		buf := alloc(t, b, 3001)
		if err := b.Fill(buf, 3001, 7.5); err != nil {
			t.Fatal(err)
		}
		for i, v := range download(t, b, buf, 3001) {
			if v != 7.5 {
				t.Fatalf("element %d = %v after Fill 7.5", i, v)
			}
		}
	})

	t.Run("pool", func(t *testing.T) {
		before := checkPoolSteady(t, b, []DType{Float32}, []int{1, 1000, 4096, 100_000, 96 * 96 * 96})
		// A double Free is harmless.
		buf, err := b.Alloc(Float32, 10)
		if err != nil {
			t.Fatal(err)
		}
		b.Free(buf)
		b.Free(buf)
		b.Free(nil)
		if got := b.Stats().InUse; got != before.InUse {
			t.Errorf("double free changed bytes in use: %d, want %d", got, before.InUse)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		buf := alloc(t, b, 4)
		foreign, freed := badBuffers(t, b, 4)
		for _, tc := range []struct {
			name string
			err  error
			want error
		}{
			{"upload too long", b.Upload(buf, make([]float32, 5)), ErrShape},
			{"upload wrong type", b.Upload(buf, make([]int16, 2)), ErrShape},
			{"upload unknown type", b.Upload(buf, []float64{1}), ErrShape},
			{"download too long", b.Download(make([]float32, 5), buf), ErrShape},
			{"download foreign", b.Download(make([]float32, 4), foreign), ErrBackend},
			{"download freed", b.Download(make([]float32, 4), freed), ErrBackend},
			{"copy foreign", b.Copy(buf, foreign, 4), ErrBackend},
			{"copy too long", b.Copy(buf, buf, 5), ErrShape},
			{"fill too long", b.Fill(buf, 5, 0), ErrShape},
		} {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
			}
		}
		for _, bad := range []struct {
			dt DType
			n  int
		}{{Float32, -1}, {DType(9), 4}, {Int16, 1 << 62}} {
			if _, err := b.Alloc(bad.dt, bad.n); !errors.Is(err, ErrShape) {
				t.Errorf("Alloc(%v, %d) = %v, want ErrShape", bad.dt, bad.n, err)
			}
		}
	})
}

func TestSizeClass(t *testing.T) {
	prev := 0
	for n := 0; n < 1<<20; n += 1 + n/7 {
		c := sizeClass(n)
		if c < n || c < prev {
			t.Fatalf("sizeClass(%d) = %d (previous %d)", n, c, prev)
		}
		if n > 1024 && float64(c) > 1.25*float64(n)+1 {
			t.Fatalf("sizeClass(%d) = %d wastes more than a quarter", n, c)
		}
		prev = c
	}
}

func TestOpen(t *testing.T) {
	b, reason, err := Open("cpu")
	if err != nil || b != CPU() || reason == "" {
		t.Fatalf("Open(cpu) = %v, %q, %v", b, reason, err)
	}
	if _, _, err := Open("tpu"); !errors.Is(err, ErrShape) {
		t.Fatalf("Open(tpu) = %v, want ErrShape", err)
	}
	b, reason, err = Open("auto")
	if err != nil || b == nil {
		t.Fatalf("Open(auto) = %v, %q, %v", b, reason, err)
	}
	if openCUDA == nil {
		if b != CPU() || reason == "" {
			t.Fatalf("Open(auto) without CUDA = %v, %q", b.Name(), reason)
		}
		if _, _, err := Open("cuda"); !errors.Is(err, ErrNoDevice) {
			t.Fatalf("Open(cuda) without CUDA = %v, want ErrNoDevice", err)
		}
	}
}

// checkPoolSteady checks that Alloc and Free reach a steady state: after
// one round of a buffer of each type and size, every Alloc of five more
// rounds is served by the pool, and freeing everything restores the bytes
// in use. It returns the statistics after the first round.
func checkPoolSteady(t *testing.T, b Backend, dtypes []DType, sizes []int) PoolStats {
	t.Helper()
	round := func() {
		var bufs []*Buffer
		for _, n := range sizes {
			for _, dt := range dtypes {
				buf, err := b.Alloc(dt, n)
				if err != nil {
					t.Fatal(err)
				}
				if buf.Len() != n || buf.DType() != dt {
					t.Fatalf("Alloc(%v, %d) gave %v × %d", dt, n, buf.DType(), buf.Len())
				}
				bufs = append(bufs, buf)
			}
		}
		for _, buf := range bufs {
			b.Free(buf)
		}
	}
	round()
	before := b.Stats()
	for i := 0; i < 5; i++ {
		round()
	}
	after := b.Stats()
	if after.Allocs != before.Allocs {
		t.Errorf("steady state allocated %d fresh buffers, want 0 (%+v)", after.Allocs-before.Allocs, after)
	}
	if want := int64(5 * len(dtypes) * len(sizes)); after.Reuses-before.Reuses != want {
		t.Errorf("reuses %d, want %d", after.Reuses-before.Reuses, want)
	}
	if after.InUse != before.InUse {
		t.Errorf("bytes in use %d after freeing everything, was %d", after.InUse, before.InUse)
	}
	return before
}
