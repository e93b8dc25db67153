package worklist

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The queue tests run through forEachBackend too: on the real redis-server
// (under the test's own prefix) and on the embedded store.

func (b *backend) newQueue(t *testing.T, cfg QueueConfig) *Queue {
	t.Helper()
	cfg.Prefix = b.prefix
	q, err := NewQueue(b.client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q
}

func mustAdd(t *testing.T, q *Queue, uid string, version int64) string {
	t.Helper()
	id, err := q.Add(context.Background(), JobMessage{StudyUID: uid, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustStats(t *testing.T, q *Queue) QueueStats {
	t.Helper()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestQueueAddReadAck(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{})
		if q.Key() != b.prefix+"jobs" {
			t.Fatalf("key %q, want %q", q.Key(), b.prefix+"jobs")
		}
		if err := q.Ensure(ctx); err != nil {
			t.Fatalf("second Ensure: %v", err)
		}
		if ok, err := q.Exists(ctx); err != nil || !ok {
			t.Fatalf("Exists after Ensure = %v, %v", ok, err)
		}
		if st := mustStats(t, q); st != (QueueStats{}) {
			t.Fatalf("stats of an empty queue %+v", st)
		}
		ids := []string{mustAdd(t, q, "1.2.3", 5), mustAdd(t, q, "1.2.4", 1), mustAdd(t, q, "1.2.3", 7)}
		time.Sleep(20 * time.Millisecond)
		st := mustStats(t, q)
		if st.Length != 3 || st.Pending != 0 || st.OldestAge < 20*time.Millisecond || st.OldestAge > time.Minute {
			t.Fatalf("stats after 3 adds %+v, want length 3, pending 0, oldest age 20ms..1m", st)
		}

		want := []JobMessage{{"1.2.3", 5}, {"1.2.4", 1}, {"1.2.3", 7}}
		for i, w := range want {
			d, err := q.Read(ctx, "w1", time.Second)
			if err != nil || d == nil {
				t.Fatalf("read %d: %+v, %v", i, d, err)
			}
			if d.ID != ids[i] || d.JobMessage != w || d.Deliveries != 1 {
				t.Fatalf("read %d: %+v, want %s %+v delivered once", i, d, ids[i], w)
			}
			if st := mustStats(t, q); st.Length != int64(3-i) || st.Pending != 1 {
				t.Fatalf("stats with one in hand %+v, want length %d pending 1", st, 3-i)
			}
			if err := q.Ack(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			if err := q.Ack(ctx, d.ID); err != nil {
				t.Fatalf("second ack: %v", err)
			}
		}
		if st := mustStats(t, q); st != (QueueStats{}) {
			t.Fatalf("stats after acking all %+v", st)
		}

		start := time.Now()
		d, err := q.Read(ctx, "w1", 100*time.Millisecond)
		if d != nil || err != nil {
			t.Fatalf("read of an empty queue: %+v, %v", d, err)
		}
		if el := time.Since(start); el < 80*time.Millisecond || el > 5*time.Second {
			t.Fatalf("read blocked %v, want about 100ms", el)
		}
		start = time.Now()
		if d, err := q.Read(ctx, "w1", 0); d != nil || err != nil || time.Since(start) > time.Second {
			t.Fatalf("non-blocking read: %+v, %v after %v", d, err, time.Since(start))
		}

		// A blocked reader gets a message added while it waits.
		got := make(chan *Delivery, 1)
		go func() {
			d, err := q.Read(ctx, "w2", 5*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- d
		}()
		time.Sleep(100 * time.Millisecond)
		id := mustAdd(t, q, "1.2.5", 2)
		select {
		case d := <-got:
			if d == nil || d.ID != id || d.StudyUID != "1.2.5" {
				t.Fatalf("blocked read got %+v, want %s", d, id)
			}
		case <-time.After(4 * time.Second):
			t.Fatal("blocked read did not return the new message")
		}
	})
}

func TestQueueErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{})
		for _, c := range []struct {
			name string
			err  error
		}{
			{"empty UID", func() error { _, err := q.Add(ctx, JobMessage{Version: 1}); return err }()},
			{"UID with a space", func() error { _, err := q.Add(ctx, JobMessage{StudyUID: "1.2 3", Version: 1}); return err }()},
			{"negative version", func() error { _, err := q.Add(ctx, JobMessage{StudyUID: "1.2.3", Version: -1}); return err }()},
			{"bad ack ID", q.Ack(ctx, "1-2-3")},
			{"empty consumer", func() error { _, err := q.Read(ctx, " ", 0); return err }()},
			{"empty reclaimer", func() error { _, err := q.Reclaim(ctx, "", time.Second, 1); return err }()},
			{"nil client", func() error { _, err := NewQueue(nil, QueueConfig{}); return err }()},
			{"negative length", func() error { _, err := NewQueue(b.client, QueueConfig{MaxLen: -1}); return err }()},
		} {
			if !errors.Is(c.err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", c.name, c.err)
			}
		}
		if st := mustStats(t, q); st.Length != 0 {
			t.Fatalf("invalid adds reached the stream: %+v", st)
		}
	})
}

func TestQueueConsumersNeverShare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{})
		const n, consumers = 200, 4
		for i := range n {
			mustAdd(t, q, fmt.Sprintf("1.2.%d", i), int64(i+1))
		}
		var (
			mu   sync.Mutex
			seen = map[string][]string{} // study -> consumers
			wg   sync.WaitGroup
		)
		for c := range consumers {
			name := fmt.Sprintf("worker-%d", c)
			client := redisClient(t, b.url) // one connection pool per consumer, as separate processes have
			qc, err := NewQueue(client, QueueConfig{Prefix: b.prefix})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				for {
					d, err := qc.Read(ctx, name, 200*time.Millisecond)
					if err != nil {
						t.Error(err)
						return
					}
					if d == nil {
						return
					}
					if d.Deliveries != 1 {
						t.Errorf("%s: %+v delivered before", name, d)
					}
					mu.Lock()
					seen[d.StudyUID] = append(seen[d.StudyUID], name)
					mu.Unlock()
					if err := qc.Ack(ctx, d.ID); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d studies delivered, want %d", len(seen), n)
		}
		for uid, by := range seen {
			if len(by) != 1 {
				t.Fatalf("%s delivered to %v", uid, by)
			}
		}
		if st := mustStats(t, q); st != (QueueStats{}) {
			t.Fatalf("stats after all acked %+v", st)
		}
	})
}

func TestQueueReclaimsFromDeadConsumer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{})
		id := mustAdd(t, q, "1.2.3", 4)
		mustAdd(t, q, "1.2.4", 1)
		d, err := q.Read(ctx, "dead", time.Second)
		if err != nil || d == nil || d.ID != id {
			t.Fatalf("read by the doomed consumer: %+v, %v", d, err)
		}
		// "dead" never acks. The other message is new: a plain Read gets it,
		// never the one held by "dead".
		d2, err := q.Read(ctx, "alive", time.Second)
		if err != nil || d2 == nil || d2.ID == id {
			t.Fatalf("read by the live consumer: %+v, %v", d2, err)
		}
		if err := q.Ack(ctx, d2.ID); err != nil {
			t.Fatal(err)
		}
		if d, err := q.Read(ctx, "alive", 50*time.Millisecond); d != nil || err != nil {
			t.Fatalf("pending message re-read as new: %+v, %v", d, err)
		}
		const minIdle = 300 * time.Millisecond
		if ds, err := q.Reclaim(ctx, "alive", minIdle, 10); err != nil || len(ds) != 0 {
			t.Fatalf("reclaim before min idle: %+v, %v", ds, err)
		}
		time.Sleep(minIdle + 50*time.Millisecond)
		ds, err := q.Reclaim(ctx, "alive", minIdle, 10)
		if err != nil || len(ds) != 1 {
			t.Fatalf("reclaim after min idle: %+v, %v; want one", ds, err)
		}
		if r := ds[0]; r.ID != id || r.JobMessage != (JobMessage{"1.2.3", 4}) || r.Deliveries != 2 {
			t.Fatalf("reclaimed %+v, want %s 1.2.3 v4 delivered twice", r, id)
		}
		// Taken over: the idle time starts again, nobody else gets it now.
		if ds, err := q.Reclaim(ctx, "third", minIdle, 10); err != nil || len(ds) != 0 {
			t.Fatalf("reclaim right after a take-over: %+v, %v", ds, err)
		}
		if st := mustStats(t, q); st.Length != 1 || st.Pending != 1 {
			t.Fatalf("stats with one reclaimed %+v", st)
		}
		time.Sleep(minIdle + 50*time.Millisecond)
		ds, err = q.Reclaim(ctx, "third", minIdle, 10)
		if err != nil || len(ds) != 1 || ds[0].ID != id || ds[0].Deliveries != 3 {
			t.Fatalf("second take-over: %+v, %v; want %s delivered 3 times", ds, err, id)
		}
		if err := q.Ack(ctx, id); err != nil {
			t.Fatal(err)
		}
		if st := mustStats(t, q); st != (QueueStats{}) {
			t.Fatalf("stats after ack %+v", st)
		}
		time.Sleep(minIdle + 50*time.Millisecond)
		if ds, err := q.Reclaim(ctx, "fourth", minIdle, 10); err != nil || len(ds) != 0 {
			t.Fatalf("reclaim of an acked message: %+v, %v", ds, err)
		}
	})
}

func TestQueueRecoversAfterStreamLoss(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{})
		mustAdd(t, q, "1.2.3", 1)
		if d, err := q.Read(ctx, "w", time.Second); err != nil || d == nil {
			t.Fatalf("read: %+v, %v", d, err)
		}
		lose := func() {
			t.Helper()
			// What FLUSHALL does to this queue, without touching anyone else's keys.
			if err := b.client.Del(ctx, q.Key()).Err(); err != nil {
				t.Fatal(err)
			}
		}
		lose()
		if ok, err := q.Exists(ctx); err != nil || ok {
			t.Fatalf("Exists after the loss = %v, %v", ok, err)
		}
		if st, err := q.Stats(ctx); err != nil || st != (QueueStats{}) {
			t.Fatalf("stats of a lost stream %+v, %v", st, err)
		}
		// Reclaim recreates stream and group and finds nothing.
		if ds, err := q.Reclaim(ctx, "w", 0, 10); err != nil || len(ds) != 0 {
			t.Fatalf("reclaim after the loss: %+v, %v", ds, err)
		}
		if ok, err := q.Exists(ctx); err != nil || !ok {
			t.Fatalf("Exists after Reclaim = %v, %v", ok, err)
		}

		// A job re-added before the group is back (the reconciler running
		// before any worker) is still delivered: Read recreates the group
		// from the start of the stream.
		lose()
		id := mustAdd(t, q, "1.2.3", 1)
		d, err := q.Read(ctx, "w", time.Second)
		if err != nil || d == nil || d.ID != id {
			t.Fatalf("read after the loss: %+v, %v; want %s", d, err, id)
		}
		if err := q.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}

		// A reader blocked while the stream goes away recovers too.
		got := make(chan *Delivery, 1)
		go func() {
			d, err := q.Read(ctx, "w", 5*time.Second)
			if err != nil {
				t.Errorf("blocked read across the loss: %v", err)
			}
			got <- d
		}()
		time.Sleep(150 * time.Millisecond)
		lose()
		time.Sleep(150 * time.Millisecond)
		id = mustAdd(t, q, "1.2.4", 2)
		select {
		case d := <-got:
			if d == nil || d.ID != id {
				t.Fatalf("blocked read across the loss got %+v, want %s", d, id)
			}
		case <-time.After(6 * time.Second):
			t.Fatal("blocked read across the loss did not return")
		}
	})
}

func TestQueueSkipsMalformed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{})
		raw := func(values ...any) string {
			t.Helper()
			id, err := b.client.XAdd(ctx, &redis.XAddArgs{Stream: q.Key(), Values: values}).Result()
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		raw(fieldStudy, "1.2 3", fieldVersion, "1")
		raw(fieldStudy, "1.2.3", fieldVersion, "one")
		raw("other", "x")
		good := mustAdd(t, q, "1.2.3", 3)
		d, err := q.Read(ctx, "w", time.Second)
		if !errors.Is(err, ErrBadMessage) {
			t.Fatalf("read past 3 bad entries: error %v, want ErrBadMessage", err)
		}
		if d == nil || d.ID != good || d.JobMessage != (JobMessage{"1.2.3", 3}) {
			t.Fatalf("read past 3 bad entries: %+v, want the good one %s", d, good)
		}
		if st := mustStats(t, q); st.Length != 1 || st.Pending != 1 {
			t.Fatalf("bad entries kept: %+v, want length 1 (the good one, pending)", st)
		}
		if err := q.Ack(ctx, good); err != nil {
			t.Fatal(err)
		}

		// Only bad entries: nothing to return, the error says why.
		raw(fieldStudy, "", fieldVersion, "2")
		d, err = q.Read(ctx, "w", 50*time.Millisecond)
		if d != nil || !errors.Is(err, ErrBadMessage) {
			t.Fatalf("read of a bad entry alone: %+v, %v", d, err)
		}

		// A bad entry pending with another consumer is dropped by Reclaim.
		bad := raw(fieldStudy, "1.2.3", fieldVersion, "-4")
		if err := b.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: DefaultQueueGroup, Consumer: "old",
			Streams: []string{q.Key(), ">"}, Count: 1, Block: -1}).Err(); err != nil {
			t.Fatal(err)
		}
		ds, err := q.Reclaim(ctx, "w", 0, 10)
		if len(ds) != 0 || !errors.Is(err, ErrBadMessage) {
			t.Fatalf("reclaim of bad entry %s: %+v, %v", bad, ds, err)
		}
		if st := mustStats(t, q); st != (QueueStats{}) {
			t.Fatalf("stats after dropping every bad entry %+v", st)
		}
	})
}

func TestQueueTrimmed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		q := b.newQueue(t, QueueConfig{MaxLen: 10})
		pipe := b.client.Pipeline()
		for i := range 999 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: q.Key(), Values: []any{fieldStudy, fmt.Sprintf("1.2.%d", i), fieldVersion, "1"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		last := mustAdd(t, q, "1.3", 1) // trims (approximately) to 10
		st := mustStats(t, q)
		if st.Length < 10 || st.Length >= 999 {
			t.Fatalf("length after a trimming add %d, want 10..(about 10 plus a node)", st.Length)
		}
		msgs, err := b.client.XRevRangeN(ctx, q.Key(), "+", "-", 1).Result()
		if err != nil || len(msgs) != 1 || msgs[0].ID != last {
			t.Fatalf("newest entry after trim %+v, %v; want %s", msgs, err, last)
		}
		// The default bound is large.
		if q2, err := NewQueue(b.client, QueueConfig{}); err != nil || q2.maxLen != DefaultQueueMaxLen || q2.group != DefaultQueueGroup || q2.Key() != DefaultPrefix+"jobs" {
			t.Fatalf("defaults: %+v, %v", q2, err)
		}
	})
}

// FuzzParseJob: any stream entry either decodes to a job whose study UID
// passes the key check and whose version is not negative, or is refused
// with ErrBadMessage; it never panics.
func FuzzParseJob(f *testing.F) {
	f.Add("1.2.840.113619.2.55.3", "32")
	f.Add("", "")
	f.Add("1.2.3", "-1")
	f.Add("../../etc", "9223372036854775808")
	f.Add("1.2.3\x00", "7")
	f.Fuzz(func(t *testing.T, study, version string) {
		m := redis.XMessage{ID: "1-0", Values: map[string]any{fieldStudy: study, fieldVersion: version}}
		j, err := parseJob(m)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if checkUID(j.StudyUID) != nil || j.Version < 0 || j.StudyUID != study {
			t.Fatalf("accepted %q %q as %+v", study, version, j)
		}
	})
}
