package e2e

import (
	"bytes"
	"context"
	"maps"
	"sync"
	"testing"
	"time"
)

// TestDurabilityKill streams STOW-RS requests (one instance each, fresh
// UIDs, two clients), SIGKILLs the server mid-stream, restarts it on the
// same data directory and database, and checks that every acknowledged
// instance is served byte-identical, that anything else served is intact,
// and that the index agrees with the blob store. Three rounds, killed at
// different moments, on the same data.
func TestDurabilityKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the server")
	}
	orig := series(t, "ct-head-5mm")
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := startServer(t, b.url(t), "")
			sent, acked := map[string]Instance{}, map[string]Instance{}
			for round, after := range []time.Duration{time.Second, 300 * time.Millisecond, 1700 * time.Millisecond} {
				sentR, ackedR := streamUntilKilled(t, s, orig, after)
				maps.Copy(sent, sentR)
				maps.Copy(acked, ackedR)
				t.Logf("round %d: killed after %d acknowledged of %d sent instances", round, len(ackedR), len(sentR))
				s = s.restart(t)
				checkAfterCrash(t, s, sent, acked)
				if t.Failed() {
					return
				}
			}
		})
	}
}

func checkAfterCrash(t *testing.T, s *server, sent, acked map[string]Instance) {
	t.Helper()
	ctx := ctxT(t, 3*time.Minute)
	for sop, in := range acked {
		got, err := s.client.Retrieve(ctx, "/studies/"+in.Study+"/series/"+in.Series+"/instances/"+sop)
		if err != nil {
			t.Errorf("acknowledged %s not retrievable after restart: %v", sop, err)
			continue
		}
		if len(got) != 1 || !bytes.Equal(got[0], in.Bytes) {
			t.Errorf("acknowledged %s: %d parts, not byte-identical", sop, len(got))
		}
	}
	counts, _ := checkIndexMatchesBlobs(t, ctx, s)

	// Whatever the server lists, acknowledged or not, is intact.
	served := 0
	for study := range counts {
		err := s.client.RetrieveEach(ctx, "/studies/"+study, func(b []byte) error {
			in, ok := ParseInstance(b)
			want, known := sent[in.SOP]
			switch {
			case !ok || !known:
				t.Errorf("study %s: served an instance that was never sent (%d bytes)", study, len(b))
			case !bytes.Equal(b, want.Bytes):
				t.Errorf("study %s: %s served torn or altered: %s", study, in.SOP, firstDiff(b, want.Bytes))
			}
			served++
			return nil
		})
		if err != nil {
			t.Errorf("WADO-RS study %s after restart: %v", study, err)
		}
	}
	if served < len(acked) {
		t.Errorf("served %d instances after restart, %d were acknowledged", served, len(acked))
	}
}

// streamUntilKilled pushes until after has passed and a few
// instances were acknowledged, then SIGKILLs the server. It returns every
// instance sent and those acknowledged (in a complete 200/202 answer's
// ReferencedSOPSequence), by SOP Instance UID.
func streamUntilKilled(t *testing.T, s *server, orig []Instance, after time.Duration) (sent, acked map[string]Instance) {
	t.Helper()
	sent, acked = map[string]Instance{}, map[string]Instance{}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var protoErr error
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, in := range Freshen(orig) {
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					sent[in.SOP] = in
					mu.Unlock()
					res, err := s.client.Store(ctx, [][]byte{in.Bytes})
					if err != nil {
						return // the kill
					}
					mu.Lock()
					if res.Status != 200 && res.Status != 202 {
						if protoErr == nil {
							protoErr = &HTTPError{"POST", s.client.Root + "/studies", res.Status, string(res.Body)}
						}
					}
					for _, uid := range res.Stored {
						if x, ok := sent[uid]; ok {
							acked[uid] = x
						}
					}
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	for {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		n, perr := len(acked), protoErr
		mu.Unlock()
		if perr != nil {
			cancel()
			wg.Wait()
			t.Fatalf("STOW-RS before the kill: %v", perr)
		}
		if time.Since(start) > after && n >= 5 {
			break
		}
		if time.Since(start) > 60*time.Second {
			cancel()
			wg.Wait()
			t.Fatalf("only %d instances acknowledged in 60s", n)
		}
	}
	s.Kill()
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return sent, acked
}
