package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestConcurrentPush: 8 clients push 8 different studies while 4 clients
// push one same study (the same bytes, each in its own order). Afterwards
// each SOP has exactly one blob and QIDO-RS agrees with the blob store.
// It runs with one server process, and with two processes sharing one data
// directory and one database (the scale-out setup), the clients taking
// turns between them, so that the same instance races across processes.
func TestConcurrentPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	orig := series(t, "ct-head-5mm")
	for _, b := range backends {
		for _, procs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%dproc", b.name, procs), func(t *testing.T) {
				first := startServer(t, b.url(t), "")
				servers := []*server{first}
				for len(servers) < procs {
					servers = append(servers, startServer(t, first.dbURL, first.dataDir))
				}
				concurrentPush(t, servers, orig)
			})
		}
	}
}

// concurrentPush is TestConcurrentPush on running servers that share one
// data directory and database.
func concurrentPush(t *testing.T, servers []*server, orig []Instance) {
	s := servers[0]
	ctx := ctxT(t, 5*time.Minute)

	type job struct {
		name  string
		insts []Instance
	}
	var jobs []job
	for i := 0; i < 8; i++ {
		jobs = append(jobs, job{"distinct", Freshen(orig)})
	}
	shared := Freshen(orig)
	for i := 0; i < 4; i++ {
		order := append([]Instance(nil), shared...)
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		jobs = append(jobs, job{"same", order})
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	for ji, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Four requests of seven instances each.
			for i := 0; i < len(j.insts); i += 7 {
				batch := j.insts[i:min(i+7, len(j.insts))]
				var parts [][]byte
				for _, in := range batch {
					parts = append(parts, in.Bytes)
				}
				res, err := servers[ji%len(servers)].client.Store(ctx, parts)
				if err != nil {
					t.Errorf("client %d (%s): %v", ji, j.name, err)
					return
				}
				if res.Status != 200 || len(res.Failed) > 0 {
					t.Errorf("client %d (%s): HTTP %d, %d failed: %.500s", ji, j.name, res.Status, len(res.Failed), res.Body)
				}
				got := map[string]bool{}
				for _, u := range res.Stored {
					got[u] = true
				}
				for _, in := range batch {
					if !got[in.SOP] {
						t.Errorf("client %d (%s): %s not in ReferencedSOPSequence", ji, j.name, in.SOP)
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()

	counts, scan := checkIndexMatchesBlobs(t, ctx, s)
	wantStudies := map[string]bool{shared[0].Study: true}
	for _, j := range jobs[:8] {
		wantStudies[j.insts[0].Study] = true
	}
	for study := range wantStudies {
		if counts[study] != len(orig) {
			t.Errorf("study %s: QIDO-RS %d instances, want %d", study, counts[study], len(orig))
		}
	}
	if len(counts) != len(wantStudies) {
		t.Errorf("QIDO-RS lists %d studies, want %d", len(counts), len(wantStudies))
	}
	if n := len(scan.BySOP); n != 9*len(orig) {
		t.Errorf("%d SOPs on disk, want %d", n, 9*len(orig))
	}
}
