package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environ, args []string) error
}

// environ is what a command sees of the process: its output streams and
// the environment (a lookup function, so that tests need no os.Setenv).
type environ struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

func commands() []command {
	return []command{
		{"serve", "run the DICOMweb server", runServe},
		{"worker", "run triage workers only (scale-out: they share serve's database, Redis and data dir)", runWorker},
		{"migrate", "migrate the index database: up, down (one step) or version", runMigrate},
		{"push", "send a folder of DICOM files to a STOW-RS server", runPush},
		{"worklist", "rebuild the Redis worklist from the index database", runWorklist},
		{"volume", "assemble a series of a folder into a NIfTI volume (.nii, .nii.gz)", runVolumeEnv},
		{"denoise", "denoise a NIfTI volume (bilateral, non-local means, Gaussian)", runDenoise},
		{"phantom", "write synthetic head-CT studies (DICOM) with lesions and their masks (NIfTI)", runPhantom},
		{"preprocess", "write the network input of a series (denoise, resample, window) as NIfTI, as triage sees it", runPreprocess},
		{"triage", "triage every study of a DICOM folder with the model ensemble: findings, tier, masks", runTriage},
		{"version", "print the version", runVersion},
		{"help", "show help for a command", nil},
	}
}

// run is the whole program: main adds only the signal handling and the
// exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runEnv(ctx, &environ{stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv}, args)
}

func runEnv(ctx context.Context, env *environ, args []string) error {
	if len(args) == 0 {
		printUsage(env.stderr)
		return usagef("no command given")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return runEnv(ctx, env, []string{rest[0], "--help"})
		}
		printUsage(env.stdout)
		return nil
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			err := c.run(ctx, env, rest)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	printUsage(env.stderr)
	return usagef("unknown command %q", name)
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "radtriage %s: DICOM triage server\n\nUsage:\n  radtriage <command> [arguments] [flags]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nEvery flag --some-flag also reads the environment variable RADTRIAGE_SOME_FLAG;\nthe command line wins. Run \"radtriage help <command>\" for its flags.\n")
}

func runVersion(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet("version", "", "Print the version of radtriage and of Go it was built with.", env)
	if _, err := fs.parse(args, 0); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "radtriage %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// envName is the environment twin of a flag: RADTRIAGE_ and the name in
// upper case with dashes as underscores.
func envName(flagName string) string {
	return "RADTRIAGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
