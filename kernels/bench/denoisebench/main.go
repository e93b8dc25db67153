// Command denoisebench times the CPU backend's denoise filters on a CT
// volume with added noise, for the scikit-image comparison of
// .ci/bench-kernels-denoise.sh (kernels/bench/bench_denoise.py).
//
//	go run ./kernels/bench/denoisebench -out DIR [-ref ct-head-5mm.nii.gz] [-reps 3] [-noise 20] [-seed 1]
//
// It reads the reference NIfTI (by default dcm2niix's ct-head-5mm in
// ../shared/dicom/ct-head-5mm.ref), adds Gaussian noise of -noise HU
// (seeded), runs each filter -reps times (keeping the fastest) and writes to DIR: clean.f32,
// noisy.f32 and ours_<method>.f32 (little-endian float32 volumes in (D, H,
// W) order, W fastest) and meta.json (shape, noise, parameters, fastest
// and all milliseconds per method).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/volume"
)

// The parameters, shared with bench_denoise.py through meta.json. Spatial
// sigmas in voxels (D, H, W): in-plane only, the slices being 5 mm.
var (
	gaussSigma = [3]float64{0, 1, 1}
	bilateral  = kernels.BilateralParams{SigmaSpatial: [3]float64{0, 1, 1}, SigmaRange: 40} // radius 3: 7×7 in-plane
	nlmPatch   = 2                                                                          // patch_size 5 (4³ voxels compared, see kernels.NLMParams)
	nlmSearch  = 2                                                                          // 5×5×5 search window
)

type method struct {
	Name   string         `json:"name"`
	Params map[string]any `json:"params"`
	Ms     float64        `json:"ms"`
	AllMs  []float64      `json:"all_ms"`
}

func main() {
	ref := flag.String("ref", "", "the clean volume (NIfTI); default: ct-head-5mm.ref/ct-head-5mm.nii.gz of the shared DICOM fixtures")
	out := flag.String("out", "", "folder to write into (required)")
	reps := flag.Int("reps", 5, "runs per filter (the fastest is reported: the machine may be shared)")
	noise := flag.Float64("noise", 20, "standard deviation of the added Gaussian noise, HU")
	seed := flag.Uint64("seed", 1, "seed of the noise")
	flag.Parse()
	if err := run(*ref, *out, *reps, *noise, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "denoisebench:", err)
		os.Exit(1)
	}
}

func run(ref, out string, reps int, noise float64, seed uint64) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	if ref == "" {
		dir, err := testenv.FindSharedDICOM()
		if err != nil {
			return err
		}
		ref = filepath.Join(dir, "ct-head-5mm.ref", "ct-head-5mm.nii.gz")
	}
	v, err := volume.ReadNIfTIFile(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	clean := v.Values()[:v.Voxels()]
	size := [3]int{v.Size[2], v.Size[1], v.Size[0]}
	noisy := make([]float32, len(clean))
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	for i, x := range clean {
		noisy[i] = x + float32(noise*r.NormFloat64())
	}
	if err := writeF32(filepath.Join(out, "clean.f32"), clean); err != nil {
		return err
	}
	if err := writeF32(filepath.Join(out, "noisy.f32"), noisy); err != nil {
		return err
	}

	b := kernels.NewCPU()
	defer b.Close()
	n := len(noisy)
	src, err := b.Alloc(kernels.Float32, n)
	if err != nil {
		return err
	}
	dst, err := b.Alloc(kernels.Float32, n)
	if err != nil {
		return err
	}
	if err := b.Upload(src, noisy); err != nil {
		return err
	}
	h := 0.8 * noise
	methods := []struct {
		name   string
		params map[string]any
		run    func() error
	}{
		{"gaussian", map[string]any{"sigma": gaussSigma, "truncate": 4.0},
			func() error { return b.Gaussian(dst, src, size, gaussSigma, 4) }},
		{"bilateral", map[string]any{"sigma_spatial": bilateral.SigmaSpatial, "sigma_range": bilateral.SigmaRange,
			"radius": kernels.BilateralRadius(bilateral.SigmaSpatial[1], 0)},
			func() error { return b.Bilateral(dst, src, size, bilateral) }},
		{"nlm", map[string]any{"patch_radius": nlmPatch, "search_radius": nlmSearch, "h": h, "sigma": noise},
			func() error {
				return b.NLM(dst, src, size, kernels.NLMParams{PatchRadius: nlmPatch, SearchRadius: nlmSearch, H: h, Sigma: noise})
			}},
		// h = 1.2 sigma: radtriage denoise's default (cmd/radtriage's
		// nlmDefaultH); 1.4 sigma: the old second row, kept to compare.
		// scikit-image runs with the same h in each row.
		{"nlm_h24", map[string]any{"patch_radius": nlmPatch, "search_radius": nlmSearch, "h": 1.2 * noise, "sigma": noise},
			func() error {
				return b.NLM(dst, src, size, kernels.NLMParams{PatchRadius: nlmPatch, SearchRadius: nlmSearch, H: 1.2 * noise, Sigma: noise})
			}},
		{"nlm_h28", map[string]any{"patch_radius": nlmPatch, "search_radius": nlmSearch, "h": 1.4 * noise, "sigma": noise},
			func() error {
				return b.NLM(dst, src, size, kernels.NLMParams{PatchRadius: nlmPatch, SearchRadius: nlmSearch, H: 1.4 * noise, Sigma: noise})
			}},
	}
	meta := map[string]any{"shape": size, "noise": noise, "seed": seed, "ref": ref, "backend": b.Name(),
		"spacing_dhw": [3]float64{v.Spacing[2], v.Spacing[1], v.Spacing[0]}}
	var done []method
	for _, m := range methods {
		var ms []float64
		for range max(reps, 1) {
			start := time.Now()
			if err := m.run(); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		}
		res := make([]float32, n)
		if err := b.Download(res, dst); err != nil {
			return err
		}
		if err := writeF32(filepath.Join(out, "ours_"+m.name+".f32"), res); err != nil {
			return err
		}
		best := slices.Min(ms)
		done = append(done, method{m.name, m.params, best, ms})
		fmt.Fprintf(os.Stderr, "%s: %.1f ms (runs %v)\n", m.name, best, ms)
	}
	meta["methods"] = done
	raw, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "meta.json"), raw, 0o644)
}

func writeF32(name string, v []float32) error {
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	return os.WriteFile(name, buf, 0o644)
}
