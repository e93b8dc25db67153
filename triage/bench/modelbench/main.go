// Command modelbench times triage's executor on the ONNX models of the
// model-inference benchmark (.ci/bench-triage-models.sh): for each model
// in DIR/models.json (written by triage/bench/make_bench_models.py) it
// reads DIR/NAME.onnx, compiles it on kernels.CPU() for the listed input
// shape, runs it on DIR/x.f32, writes the output to DIR/NAME.radtriage.f32
// and prints one JSON object per line: {"name": ..., "ms": ...,
// "min_ms": ..., "peak_mb": ...}, the median and the fastest of -reps runs
// after one warm-up, and the plan's peak activation memory.
//
//	GOMAXPROCS=2 modelbench [-reps N] [-profile [-nodes]] [-cpuprofile FILE] DIR
//
// With -profile it also prints, per model, one JSON object with the sum
// of a profiled run's step times by operator type:
// {"name": ..., "profile": {"Conv": ms, ...}}; with -nodes also each
// step's time, on stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/radtriage/radtriage/triage/bench/benchio"

	"github.com/radtriage/radtriage/kernels"
	"github.com/radtriage/radtriage/triage"
)

// nodes is the -nodes flag.
var nodes bool

type modelInfo struct {
	Name          string
	Input, Output []int
}

func main() {
	reps := flag.Int("reps", 5, "timed runs per model (median)")
	profile := flag.Bool("profile", false, "also print a per-operator-type breakdown of a profiled run")
	flag.BoolVar(&nodes, "nodes", false, "with -profile, also print each step's time")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	flag.Parse()
	if flag.NArg() != 1 || *reps < 1 {
		fmt.Fprintln(os.Stderr, "usage: modelbench [-reps N] [-profile [-nodes]] [-cpuprofile FILE] DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *reps, *profile, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "modelbench:", err)
		os.Exit(1)
	}
}

func run(dir string, reps int, profile bool, cpuprofile string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "models.json"))
	if err != nil {
		return err
	}
	var models []modelInfo
	if err := json.Unmarshal(raw, &models); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "models.json"), err)
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, mi := range models {
		if err := bench(dir, mi, reps, profile); err != nil {
			return fmt.Errorf("model %s: %w", mi.Name, err)
		}
	}
	return nil
}

func bench(dir string, mi modelInfo, reps int, profile bool) error {
	x, err := benchio.ReadF32(filepath.Join(dir, "x.f32"), benchio.Numel(mi.Input))
	if err != nil {
		return err
	}
	m, err := triage.ReadModelFile(filepath.Join(dir, mi.Name+".onnx"), triage.Limits{})
	if err != nil {
		return err
	}
	ctx := context.Background()
	shapes := map[string][]int{"x": mi.Input}
	in := map[string][]float32{"x": x}
	p, err := triage.Compile(m, kernels.CPU(), shapes, triage.CompileOptions{})
	if err != nil {
		return err
	}
	defer p.Close()
	out, err := p.Run(ctx, in) // warm-up
	if err != nil {
		return err
	}
	y, ok := out["y"]
	if !ok || len(y) != benchio.Numel(mi.Output) {
		return fmt.Errorf("output y: %d values, want %d (shape %v)", len(y), benchio.Numel(mi.Output), mi.Output)
	}
	if err := benchio.WriteF32(filepath.Join(dir, mi.Name+".radtriage.f32"), y); err != nil {
		return err
	}
	ts := make([]float64, reps)
	for i := range ts {
		t0 := time.Now()
		if _, err := p.Run(ctx, in); err != nil {
			return err
		}
		ts[i] = float64(time.Since(t0).Nanoseconds()) / 1e6
	}
	slices.Sort(ts)
	line, _ := json.Marshal(map[string]any{"name": mi.Name, "ms": ts[len(ts)/2], "min_ms": ts[0], "peak_mb": float64(p.PeakBytes()) / (1 << 20)})
	fmt.Println(string(line))
	if !profile {
		return nil
	}
	pp, err := triage.Compile(m, kernels.CPU(), shapes, triage.CompileOptions{Profile: true})
	if err != nil {
		return err
	}
	defer pp.Close()
	for range 2 { // the second run's timings, after a warm-up
		if _, err := pp.Run(ctx, in); err != nil {
			return err
		}
	}
	byOp := map[string]float64{}
	for _, t := range pp.Profile() {
		byOp[t.Op] += t.Ms
		if nodes {
			fmt.Fprintf(os.Stderr, "%s\t%s\t%s\t%.2f ms\n", mi.Name, t.Node, t.Op, t.Ms)
		}
	}
	line, _ = json.Marshal(map[string]any{"name": mi.Name, "profile": byOp})
	fmt.Println(string(line))
	return nil
}
