package main

import (
	"slices"
	"time"

	"github.com/radtriage/radtriage/internal/benchstat"
)

// opStats collects one goroutine's measurements of one operation: every
// latency (kept whole, so percentiles are exact) and the round trips.
type opStats struct {
	lat        []time.Duration
	rt         int // round trips, summed over ops
	rtMax      int // most round trips one op took
	handshakes int // handshake commands of new connections, summed over ops
	short      int // listings that returned fewer items than asked for
	errs       int
	firstErr   error
}

// add records one operation that took d and rt's counts.
func (s *opStats) add(d time.Duration, rt *roundTrips, err error) {
	if err != nil {
		s.errs++
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	s.lat = append(s.lat, d)
	s.rt += rt.n
	s.rtMax = max(s.rtMax, rt.n)
	s.handshakes += rt.handshakes
}

// merge adds o's measurements to s.
func (s *opStats) merge(o *opStats) {
	s.lat = append(s.lat, o.lat...)
	s.rt += o.rt
	s.rtMax = max(s.rtMax, o.rtMax)
	s.handshakes += o.handshakes
	s.errs += o.errs
	s.short += o.short
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
}

// summary is one row of the result table.
type summary struct {
	name       string
	clients    int
	n          int
	opsPerS    float64
	p50, p99   float64 // milliseconds
	rtMean     float64
	rtMax      int
	handshakes int // handshake commands of new connections during the calls
	short      int // listings that returned fewer items than asked for
	errs       int
	firstErr   error
	// serverUS is the server's CPU time in microseconds (INFO
	// commandstats) per operation, or per call for redis-benchmark's rows;
	// -1 when not measured.
	serverUS float64
	command  string // redis-benchmark's command line, for its rows
}

// summarize sorts s's latencies and returns its row for a phase that ran
// for elapsed.
func (s *opStats) summarize(name string, clients int, elapsed time.Duration) summary {
	slices.Sort(s.lat)
	r := summary{name: name, clients: clients, n: len(s.lat), rtMax: s.rtMax, handshakes: s.handshakes, short: s.short, errs: s.errs, firstErr: s.firstErr, serverUS: -1}
	if elapsed > 0 {
		r.opsPerS = float64(len(s.lat)) / elapsed.Seconds()
	}
	if len(s.lat) > 0 {
		r.p50 = ms(benchstat.PercentileSorted(s.lat, 0.50))
		r.p99 = ms(benchstat.PercentileSorted(s.lat, 0.99))
		r.rtMean = float64(s.rt) / float64(len(s.lat))
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
