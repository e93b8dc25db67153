package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"golang.org/x/term"

	"github.com/radtriage/radtriage/api/client"
)

type pushConfig struct {
	Dir         string
	URL         string
	Concurrency int
	BatchSize   int64
	Retries     int
}

func parsePush(env *environ, args []string) (*pushConfig, error) {
	var c pushConfig
	fs := newFlagSet("push", "DIR", `Send every DICOM file under DIR to a STOW-RS server, one study per request
(split into batches of --batch-size), and print what was stored, warned about
and refused. Non-DICOM files and DICOMDIR objects are skipped. The exit status
is 1 when any instance failed.`, env)
	fs.stringVar(&c.URL, "url", "URL", "", "DICOMweb base URL; requests go to URL/studies (http://127.0.0.1:8080/dicomweb)", checkHTTPURL)
	fs.intVar(&c.Concurrency, "concurrency", client.DefaultConcurrency, 1, "requests in flight")
	fs.sizeVar(&c.BatchSize, "batch-size", "64MiB", "most file bytes in one request (a larger file goes alone)")
	fs.intVar(&c.Retries, "retries", client.DefaultRetries, 0, "retries of a request after a network error, 5xx or 429, with exponential backoff")
	pos, err := fs.parse(args, 1)
	if err != nil {
		return nil, err
	}
	c.Dir = pos[0]
	if c.URL == "" {
		return nil, usagef("push: --url (or RADTRIAGE_URL) is required")
	}
	return &c, nil
}

func checkHTTPURL(s string) error {
	if s == "" {
		return nil // required-ness is checked after parsing
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http:// or https:// URL")
	}
	return nil
}

func runPush(ctx context.Context, env *environ, args []string) error {
	c, err := parsePush(env, args)
	if err != nil {
		return err
	}
	return push(ctx, c, env.stdout, env.stderr)
}

// push scans, sends and summarises. The progress bar is drawn only when
// stderr is a terminal.
func push(ctx context.Context, c *pushConfig, stdout, stderr io.Writer) error {
	st, err := os.Stat(c.Dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder", c.Dir)
	}
	inv, err := client.Scan(ctx, os.DirFS(c.Dir))
	if err != nil {
		return fmt.Errorf("scanning %s: %w", c.Dir, err)
	}
	n, size := inv.Files()
	fmt.Fprintf(stderr, "%s: %d DICOM files (%s) in %d studies, %d other files skipped\n",
		c.Dir, n, client.FormatSize(size), len(inv.Studies), len(inv.Skipped))
	retries := c.Retries
	if retries == 0 {
		retries = -1 // the client's zero value means its default
	}
	cl := &client.Client{URL: c.URL, Concurrency: c.Concurrency, MaxBatchBytes: c.BatchSize, Retries: retries}
	var bar *client.Bar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && n > 0 {
		bar = client.NewBar(stderr, size)
		cl.Progress = bar.Add
	}
	sum, err := cl.Push(ctx, os.DirFS(c.Dir), inv)
	if bar != nil {
		bar.Finish()
	}
	if sum != nil {
		sum.Print(stdout)
	}
	if err != nil {
		return err
	}
	if failed := sum.Count(client.Failed); failed > 0 {
		return fmt.Errorf("%d of %d instances failed", failed, len(sum.Results))
	}
	return nil
}
