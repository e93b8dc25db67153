package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radtriage/radtriage/kernels"
)

const ctHead = "../../../shared/dicom/ct-head-5mm" // ../shared from the repository root

// TestServePush runs the real server as serve does, pushes the CT head
// study with push, and stops the server with the context.
func TestServePush(t *testing.T) {
	env, _, _ := testEnv(map[string]string{"RADTRIAGE_DATA_DIR": t.TempDir()})
	c, err := parseServe(env, []string{"--addr", "127.0.0.1:0", "--stable-age", "1s", "--log-level", "debug"})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, c)
	ctx, base, logs := t.Context(), srv.base, srv.logs

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}

	var stdout, stderr bytes.Buffer
	err = push(ctx, &pushConfig{Dir: ctHead, URL: base + "/dicomweb", Concurrency: 2, BatchSize: 4 << 20, Retries: 1}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("push: %v\n%s%s", err, stderr.String(), stdout.String())
	}
	if !strings.HasPrefix(stdout.String(), "28 stored, 0 stored with warnings, 0 failed, 2 skipped\n") {
		t.Errorf("push summary:\n%s", stdout.String())
	}

	// The stability watcher runs: the study becomes stable with its 28
	// instances and is logged (maybe once before, if the upload paused).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "instances=28") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := srv.stop(t); err != nil {
		t.Fatalf("serve returned %v after cancel", err)
	}
	out := logs.String()
	for _, want := range []string{"radtriage serving", "database=sqlite", "not for production", "study stable", "instances=28", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "data_dir="+filepath.Clean(c.DataDir)) {
		t.Errorf("log lacks the data dir %s:\n%s", c.DataDir, out)
	}
}

// TestPushFailureExitStatus: a push where an instance fails returns an
// error (exit status 1) after printing the summary.
func TestPushFailureExitStatus(t *testing.T) {
	srv := &http.Server{Handler: http.NotFoundHandler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var stdout bytes.Buffer
	err = push(t.Context(), &pushConfig{Dir: ctHead, URL: "http://" + ln.Addr().String() + "/dicomweb", Concurrency: 4, BatchSize: 64 << 20}, &stdout, io.Discard)
	if err == nil || err.Error() != "28 of 28 instances failed" || exitCode(err) != 1 {
		t.Errorf("error %v, want 28 of 28 instances failed", err)
	}
	if !strings.Contains(stdout.String(), "404 Not Found") {
		t.Errorf("summary does not give the reason:\n%s", stdout.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningServe is a serve started by startServe.
type runningServe struct {
	base   string // http://host:port
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServe runs serve with c (until stop, or the end of the test) and
// returns once it listens; it fails the test when serve returns first.
func startServe(t *testing.T, c *serveConfig) *runningServe {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	s := &runningServe{logs: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	go func() { s.done <- serve(ctx, c, s.logs, ready) }()
	select {
	case addr := <-ready:
		s.base = "http://" + addr.String()
	case err := <-s.done:
		t.Fatalf("serve: %v\n%s", err, s.logs.String())
	}
	return s
}

// stop cancels serve and returns what it returned; it fails the test when
// serve takes longer than its shutdown grace.
func (s *runningServe) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(shutdownGrace):
		t.Fatal("serve did not stop")
		return nil
	}
}

// A binary without CUDA asked for --backend cuda refuses to start, saying
// why, rather than serving on the CPU unnoticed.
func TestServeBackendCUDAMissing(t *testing.T) {
	if _, _, err := kernels.Open("cuda"); err == nil {
		t.Skip("this build has a working CUDA backend")
	}
	env, _, stderr := testEnv(nil)
	c, err := parseServe(env, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--backend", "cuda"})
	if err != nil {
		t.Fatal(err)
	}
	err = serve(t.Context(), c, stderr, nil)
	if err == nil || !errors.Is(err, kernels.ErrNoDevice) || !strings.Contains(err.Error(), "--backend cuda") {
		t.Fatalf("serve --backend cuda = %v, want an ErrNoDevice naming the flag", err)
	}
}
