package main

import (
	"context"
	"os/exec"
	"time"
)

func execOutput(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err == nil && len(out) == 0 {
		err = errNoOutput
	}
	return string(out), err
}
