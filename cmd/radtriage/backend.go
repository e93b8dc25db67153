package main

import (
	"fmt"
	"log/slog"

	"github.com/radtriage/radtriage/kernels"
)

// backendFlag registers --backend, which every command that computes
// (serve, denoise, and the triage commands) shares.
func backendFlag(fs *flagSet, v *string) {
	fs.enumVar(v, "backend", "auto", `compute backend: cpu; cuda (fail when no GPU answers); auto (CUDA when this binary has it and a device answers, else the CPU)`, "cpu", "cuda", "auto")
}

// openBackend opens the backend a --backend value names and logs which
// one runs and why.
func openBackend(name string, logger *slog.Logger) (kernels.Backend, error) {
	b, reason, err := kernels.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--backend %s: %w", name, err)
	}
	if logger != nil {
		logger.Info("compute backend", "backend", b.Name(), "asked", name, "reason", reason)
	}
	return b, nil
}
