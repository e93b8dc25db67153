package store

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkStore measures ingest (spool + hash, fsync, parse, link, fsync
// directory, index commit) of ct-head-5mm slices under fresh UIDs, 28
// slices per study, from 1 and from 8 concurrent writers, on SQLite and
// on PostgreSQL.
//
// Outside reference: with RADTRIAGE_BENCH_ORTHANC_URL set (an Orthanc
// REST root such as http://127.0.0.1:8042, no authentication), the
// orthanc/writers=N sub-benchmarks push the same slices, generated the
// same way, to Orthanc's POST /instances, so both rates come from one run
// on one machine. With RADTRIAGE_ORTHANC_INSTANCES_PER_S set to Orthanc's
// rate, the store sub-benchmarks also report the ratio as x_orthanc
// (target: >= 2). Orthanc's figure includes HTTP; the store's does not.
func BenchmarkStore(b *testing.B) {
	if u := os.Getenv("RADTRIAGE_BENCH_ORTHANC_URL"); u != "" {
		for _, writers := range []int{1, 8} {
			b.Run("orthanc/writers="+strconv.Itoa(writers), func(b *testing.B) {
				benchOrthanc(b, strings.TrimSuffix(u, "/"), writers)
			})
		}
	}
	for _, env := range []struct {
		name string
		cfg  func(testing.TB) Config
	}{{"sqlite", sqliteEnv}, {"postgres", postgresEnv}} {
		for _, writers := range []int{1, 8} {
			b.Run(env.name+"/writers="+strconv.Itoa(writers), func(b *testing.B) {
				benchStore(b, env.cfg(b), writers)
			})
		}
	}
}

func benchStore(b *testing.B, cfg Config, writers int) {
	db, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	runIngest(b, writers, func(data []byte) {
		res, err := db.Store(context.Background(), bytes.NewReader(data), StoreOptions{})
		if err != nil || res.Outcome != Stored {
			b.Errorf("store: %v %v", res, err)
		}
	})
}

func benchOrthanc(b *testing.B, root string, writers int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}}
	runIngest(b, writers, func(data []byte) {
		resp, err := client.Post(root+"/instances", "application/dicom", bytes.NewReader(data))
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("orthanc: %s", resp.Status)
		}
	})
}

// runIngest calls store b.N times on fresh slices from a fixed number of
// writers (RunParallel would scale them with GOMAXPROCS) and reports the
// rate in instances per second.
func runIngest(b *testing.B, writers int, store func([]byte)) {
	images, _ := ctHead(b)
	gen := &studyGen{images: images}
	var size int64
	for _, s := range images {
		size += int64(len(s.data))
	}
	b.SetBytes(size / int64(len(images)))
	var n atomic.Int64
	if writers == 1 {
		for b.Loop() {
			store(gen.next())
			n.Add(1)
		}
	} else {
		b.ResetTimer()
		var wg sync.WaitGroup
		per := make(chan struct{}, b.N)
		for range b.N {
			per <- struct{}{}
		}
		close(per)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					store(gen.next())
					n.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	rate := float64(n.Load()) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "inst/s")
	if ref, err := strconv.ParseFloat(os.Getenv("RADTRIAGE_ORTHANC_INSTANCES_PER_S"), 64); err == nil && ref > 0 {
		b.ReportMetric(rate/ref, "x_orthanc")
	}
}

// studyGen hands out ct-head-5mm slices in instance order, every 28 of
// them a new study under fresh UIDs. The UID map of a study is complete
// before it is shared, so rewriting runs outside the lock.
type studyGen struct {
	images []slice
	mu     sync.Mutex
	i      int
	m      uidMap
}

func (g *studyGen) next() []byte {
	g.mu.Lock()
	k := g.i % len(g.images)
	if k == 0 {
		g.m = uidMap{}
		for _, s := range g.images {
			for _, u := range []string{s.inst.StudyInstanceUID, s.inst.SeriesInstanceUID, s.inst.SOPInstanceUID} {
				if _, ok := g.m[u]; !ok {
					g.m[u] = newUID(len(u))
				}
			}
		}
	}
	g.i++
	m := g.m
	g.mu.Unlock()
	return m.rewrite(g.images[k])
}
