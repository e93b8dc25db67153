// Command codecbench measures radtriage's pixel decoding throughput per
// transfer syntax on the shared DICOM fixtures and, in the same run, the
// throughput of outside reference decoders (dcmtk's dcmdrle, dcmdjpeg,
// dcmdjpls and dcmconv; OpenJPEG's opj_decompress) on the same files, and
// writes a markdown table:
//
//	go run -tags openjpeg,charls ./cmd/codecbench -shared ../shared/dicom -out bench-codecs.md
//
// Throughput is MB (10^6 bytes) of decoded output pixels per second.
// radtriage: dicomio.DecodePixels on every file of a set, files preloaded
// in memory, one goroutine, best of -runs runs per file, summed. Reference tools: per
// file, the process wall time of the tool minus the wall time of dcmconv
// copying the tool's native output (process start, DICOM parsing and file
// I/O of an equal-sized native file), or for opj_decompress minus
// opj_dump on the same codestream, each the best of -refruns runs;
// -clock cpu uses CPU time (user + system) instead, for a loaded machine.
// Codecs not registered in the build get a row saying so.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/dicomio/codec"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "codecbench:", err)
		os.Exit(1)
	}
}

// set is one group of fixtures in one transfer syntax.
type set struct {
	name string // table label
	dir  string // under -shared
	// native is the folder holding the same images uncompressed, with
	// the same file names less ".dcm", for the reference's baseline when
	// the reference tool writes no DICOM (opj_decompress).
	native string
	// ref is the reference decoder: "dcmdrle", "dcmdjpeg", "dcmdjpls",
	// "dcmconv" (deflate), "opj_decompress", or "" for none.
	ref string
}

var sets = []set{
	{name: "native (explicit VR LE)", dir: "ct-head-5mm"},
	{name: "deflate", dir: "ct-head-5mm.deflate", ref: "dcmconv"},
	{name: "RLE", dir: "ct-head-5mm.rle", ref: "dcmdrle"},
	{name: "JPEG lossless SV1", dir: "ct-head-5mm.jpll", ref: "dcmdjpeg"},
	{name: "JPEG-LS lossless", dir: "ct-head-5mm.jlsl", ref: "dcmdjpls"},
	{name: "JPEG 2000 lossless", dir: "ct-head-5mm.j2kr", native: "ct-head-5mm", ref: "opj_decompress"},
	{name: "JPEG extended 12-bit (WG04 JPLY)", dir: "wg04/JPLY", ref: "dcmdjpeg"},
}

// useCPU selects CPU time (user + system) instead of wall time, for a
// loaded machine where waiting for a core would dominate wall times.
var useCPU bool

// nativeSyntaxes are decoded by dicomio itself, without a codec.
var nativeSyntaxes = map[string]bool{
	"1.2.840.10008.1.2": true, "1.2.840.10008.1.2.1": true, "1.2.840.10008.1.2.1.99": true, "1.2.840.10008.1.2.2": true,
}

// row is one line of the output table.
type row struct {
	set                    set
	files                  int
	mb                     float64
	ours, refMBs           float64
	refTool, note, decoder string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("codecbench", flag.ContinueOnError)
	shared := fs.String("shared", "../shared/dicom", "folder of the shared DICOM fixtures")
	out := fs.String("out", "bench-codecs.md", "markdown file to write (- for stdout only)")
	runs := fs.Int("runs", 5, "radtriage runs per file (best is kept)")
	refRuns := fs.Int("refruns", 3, "reference tool runs per file (best is kept)")
	clk := fs.String("clock", "wall", "what to time: wall (elapsed) or cpu (user+system CPU time of radtriage's process and of each tool's process)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *refRuns < 1 {
		return errors.New("-runs and -refruns must be at least 1")
	}
	switch *clk {
	case "wall":
	case "cpu":
		useCPU = true
		if _, err := selfCPU(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-clock %q: want wall or cpu", *clk)
	}
	tmp, err := os.MkdirTemp("", "codecbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var rows []row
	for _, s := range sets {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := measure(ctx, *shared, s, *runs, *refRuns, tmp)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "%-34s %s\n", s.name, r.line())
		rows = append(rows, r)
	}
	md := render(rows, *runs, *refRuns)
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if *out != "-" {
		return os.WriteFile(*out, []byte(md), 0o644)
	}
	return nil
}

// measure benchmarks one set.
func measure(ctx context.Context, shared string, s set, runs, refRuns int, tmp string) (row, error) {
	r := row{set: s, refTool: s.ref}
	paths, files, err := load(filepath.Join(shared, s.dir))
	if err != nil {
		return r, err
	}
	if len(files) == 0 {
		r.note = "no image files found"
		return r, nil
	}
	in, err := dicomio.ReadInstanceBytes(files[0])
	if err != nil {
		return r, fmt.Errorf("%s: %w", paths[0], err)
	}
	if !nativeSyntaxes[in.TransferSyntaxUID] {
		d, ok := codec.Lookup(in.TransferSyntaxUID)
		if !ok {
			r.files = len(files)
			r.note = "not registered in this build (transfer syntax " + in.TransferSyntaxUID + ")"
			return r, nil
		}
		r.decoder = d.Name
	}

	r.files = len(files)
	refOK := s.ref != ""
	if refOK {
		for _, t := range []string{s.ref, "dcmconv"} {
			if _, err := exec.LookPath(t); err != nil {
				r.note = t + " not installed"
				r.refTool = "n/a"
				refOK = false
				break
			}
		}
	}

	// File by file, radtriage then the reference tool and its baseline,
	// so that both see the same machine load; each time is the best of
	// its runs, and the bests are summed.
	var ours, tool, base time.Duration
	var total int64
	for j, b := range files {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		best := time.Duration(1<<63 - 1)
		for i := 0; i < runs; i++ {
			since := begin()
			_, p, err := dicomio.DecodePixels(b)
			d := since()
			if err != nil {
				return r, fmt.Errorf("%s: %w", paths[j], err)
			}
			best = min(best, d)
			if i == 0 {
				total += int64(len(p.Data))
			}
		}
		ours += best
		if refOK {
			t, bl, err := reference(ctx, s, paths[j], b, shared, refRuns, tmp)
			if err != nil {
				return r, fmt.Errorf("%s on %s: %w", s.ref, paths[j], err)
			}
			tool += t
			base += bl
		}
	}
	r.mb = float64(total) / 1e6
	r.ours = r.mb / ours.Seconds()
	if !refOK {
		return r, nil
	}
	// A difference within a tenth of the baseline (a twentieth in CPU
	// time, which varies less) is timing noise, not a measurement:
	// process start varies by more than small frames take to decode.
	noise := base / 10
	if useCPU {
		noise = base / 20
	}
	if tool-base < noise {
		r.note = fmt.Sprintf("%s's decode time is below the noise of process timing (tool %v, baseline %v in all)",
			s.ref, tool.Round(time.Millisecond), base.Round(time.Millisecond))
		return r, nil
	}
	r.refMBs = r.mb / (tool - base).Seconds()
	return r, nil
}

// reference times the reference tool on one file and the dcmconv
// baseline, each the best of n runs.
func reference(ctx context.Context, s set, path string, data []byte, shared string, n int, tmp string) (tool, base time.Duration, err error) {
	native := filepath.Join(tmp, "native.dcm")
	var argv, baseline []string
	switch s.ref {
	case "opj_decompress":
		cs, err := codestream(data)
		if err != nil {
			return 0, 0, err
		}
		in := filepath.Join(tmp, "frame.j2k")
		if err := os.WriteFile(in, cs, 0o644); err != nil {
			return 0, 0, err
		}
		argv = []string{"opj_decompress", "-quiet", "-i", in, "-o", filepath.Join(tmp, "frame.raw")}
		// opj_dump (same package, same library) starts, loads libopenjp2
		// and reads the codestream's headers: what opj_decompress does
		// besides decoding. dcmconv would be a heavier baseline.
		baseline = []string{"opj_dump", "-i", in, "-o", filepath.Join(tmp, "dump.txt")}
		if _, err := exec.LookPath("opj_dump"); err != nil {
			baseline = []string{"dcmconv", filepath.Join(shared, s.native, strings.TrimSuffix(filepath.Base(path), ".dcm")), filepath.Join(tmp, "copy.dcm")}
		}
	case "dcmconv":
		argv = []string{"dcmconv", "+te", path, native}
		baseline = []string{"dcmconv", native, filepath.Join(tmp, "copy.dcm")}
	default:
		argv = []string{s.ref, path, native}
		baseline = []string{"dcmconv", native, filepath.Join(tmp, "copy.dcm")}
	}
	if tool, err = bestOf(ctx, n, argv); err != nil {
		return 0, 0, err
	}
	base, err = bestOf(ctx, n, baseline)
	return tool, base, err
}

// begin starts a measurement of this process (wall or CPU time, per
// useCPU) and returns the function that ends it.
func begin() func() time.Duration {
	if useCPU {
		c0, _ := selfCPU() // checked to work in run
		return func() time.Duration {
			c1, _ := selfCPU()
			return c1 - c0
		}
	}
	t0 := time.Now()
	return func() time.Duration { return time.Since(t0) }
}

// bestOf runs a command n times and returns its shortest time (wall or
// CPU, per useCPU).
func bestOf(ctx context.Context, n int, argv []string) (time.Duration, error) {
	best := time.Duration(1<<63 - 1)
	for i := 0; i < n; i++ {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
		}
		d := time.Since(start)
		if useCPU {
			d = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		best = min(best, d)
	}
	return best, nil
}

// codestream returns the concatenated fragments of an encapsulated
// single-frame instance (PS3.5 §A.4): the JPEG 2000 codestream.
func codestream(data []byte) ([]byte, error) {
	v, err := dicomio.PixelDataBytes(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	var out []byte
	for first := true; len(v) > 0; first = false {
		if len(v) < 8 || binary.LittleEndian.Uint32(v) != 0xE000FFFE {
			return nil, errors.New("malformed item in encapsulated pixel data")
		}
		n := uint64(binary.LittleEndian.Uint32(v[4:]))
		if n > uint64(len(v)-8) {
			return nil, errors.New("item overruns the encapsulated pixel data")
		}
		if !first { // the first item is the Basic Offset Table
			out = append(out, v[8:8+n]...)
		}
		v = v[8+n:]
	}
	return out, nil
}

// load reads every file of a folder that holds an image, sorted by name.
func load(dir string) ([]string, [][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var paths []string
	var files [][]byte
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		in, err := dicomio.ReadInstanceBytes(b)
		if err != nil || !in.HasPixelData {
			continue // DIRFILE and other non-image objects
		}
		paths = append(paths, p)
		files = append(files, b)
	}
	sort.Sort(byPath{paths, files})
	return paths, files, nil
}

type byPath struct {
	p []string
	b [][]byte
}

func (s byPath) Len() int           { return len(s.p) }
func (s byPath) Less(i, j int) bool { return s.p[i] < s.p[j] }
func (s byPath) Swap(i, j int) {
	s.p[i], s.p[j] = s.p[j], s.p[i]
	s.b[i], s.b[j] = s.b[j], s.b[i]
}

func (r row) line() string {
	return fmt.Sprintf("files %d, %.1f MB, radtriage %.0f MB/s, %s %s", r.files, r.mb, r.ours, r.refTool, r.refCell())
}

func (r row) refCell() string {
	switch {
	case r.refMBs > 0:
		return fmt.Sprintf("%.0f", r.refMBs)
	case r.set.ref == "":
		return "-"
	}
	return "n/a"
}

// render formats the table and its notes.
func render(rows []row, runs, refRuns int) string {
	what := "wall time"
	if useCPU {
		what = "CPU time (user + system)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| codec | files | MB decoded | radtriage MB/s | reference tool | reference MB/s | ratio |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---|---:|---:|\n")
	var notes []string
	for _, r := range rows {
		if r.ours == 0 {
			fmt.Fprintf(&b, "| %s | %d | - | skipped: %s | %s | - | - |\n", r.set.name, r.files, r.note, orDash(r.refTool))
			continue
		}
		ratio := "-"
		if r.refMBs > 0 {
			ratio = fmt.Sprintf("%.2f", r.ours/r.refMBs)
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.0f | %s | %s | %s |\n", r.set.name, r.files, r.mb, r.ours, orDash(r.refTool), r.refCell(), ratio)
		if r.decoder != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", r.set.name, r.decoder))
		}
		if r.note != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", r.set.name, r.note))
		}
	}
	fmt.Fprintf(&b, "\nTimes are %s. MB = 10^6 bytes of decoded output pixels (Rows×Columns×Samples×BitsAllocated/8 per frame). ", what)
	fmt.Fprintf(&b, "radtriage: `dicomio.DecodePixels` on every file of the set, files preloaded in memory, one goroutine, "+
		"best of %d runs per file, summed; for native data this is parsing only, since the pixels alias the input. ", runs)
	fmt.Fprintf(&b, "Reference: per file, the process %s of the tool (dcmtk's dcmdrle, dcmdjpeg, dcmdjpls, `dcmconv +te` for deflate; "+
		"OpenJPEG's opj_decompress on the extracted codestream) minus the %s of `dcmconv` copying the native result, "+
		"which subtracts process start, DICOM parsing and file I/O (for opj_decompress, minus `opj_dump` on the same codestream: "+
		"process start, library load, header parsing); "+
		"each the best of %d runs, summed over the files; files are measured one by one, radtriage then the tool, so that both see the same machine load. The subtraction is approximate: the tools' own overheads differ "+
		"from the baseline's. "+
		"ratio = radtriage MB/s ÷ reference MB/s (above 1: radtriage faster).\n", what, what, refRuns)
	fmt.Fprintf(&b, "\nMeasured with %s, GOMAXPROCS %d, on %s, %s.\n", runtime.Version(), runtime.GOMAXPROCS(0), cpuModel(), time.Now().UTC().Format("2006-01-02"))
	if len(notes) > 0 {
		fmt.Fprintf(&b, "\nDecoders: %s.\n", strings.Join(notes, "; "))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cpuModel names the CPU from /proc/cpuinfo, where there is one.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}
