// Command radtriage is the radtriage DICOM triage server and its tools:
// serve, worker, migrate, push, worklist, volume, denoise, phantom, preprocess,
// triage and version. Run "radtriage help" for usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "radtriage:", err)
		os.Exit(exitCode(err))
	}
}
