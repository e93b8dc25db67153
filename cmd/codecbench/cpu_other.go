//go:build !unix

package main

import (
	"errors"
	"time"
)

// selfCPU is unavailable here: -clock cpu needs getrusage.
func selfCPU() (time.Duration, error) {
	return 0, errors.New("-clock cpu needs a Unix system (getrusage)")
}
