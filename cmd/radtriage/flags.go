package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// flagSet is a flag.FlagSet whose every flag --name also reads the
// environment variable RADTRIAGE_NAME. A flag on the command line wins
// over the environment, which wins over the default; an empty variable
// counts as unset. Values are checked once all sources are known, and an
// error names the source that gave the bad value:
//
//	invalid --addr "x": missing port in address
//	invalid RADTRIAGE_STABLE_AGE "abc": time: invalid duration "abc"
type flagSet struct {
	fs       *flag.FlagSet
	env      *environ
	synopsis string
	about    string
	opts     []*option
}

type option struct {
	name, def, usage, metavar string
	set                       func(string) error

	cmdline  string
	fromFlag bool
	source   string // after parse: "--name", "RADTRIAGE_NAME" or "--name (default)"
	value    string // after parse: the text that was used
}

func newFlagSet(name, synopsis, about string, env *environ) *flagSet {
	f := &flagSet{fs: flag.NewFlagSet(name, flag.ContinueOnError), env: env, synopsis: synopsis, about: about}
	f.fs.SetOutput(io.Discard) // errors are returned; usage goes to stdout on --help
	return f
}

// add registers a flag whose value, from whichever source, goes to set.
func (f *flagSet) add(name, metavar, def, usage string, set func(string) error) {
	f.fs.Func(name, usage, f.option(name, metavar, def, usage, set))
}

// option records a flag and returns what the flag package calls with its
// command-line value.
func (f *flagSet) option(name, metavar, def, usage string, set func(string) error) func(string) error {
	o := &option{name: name, def: def, usage: usage, metavar: metavar, set: set}
	f.opts = append(f.opts, o)
	return func(s string) error {
		o.cmdline, o.fromFlag = s, true
		return nil
	}
}

// boolVar registers a boolean flag: --name alone is true, --name=false
// (or RADTRIAGE_NAME=false) false.
func (f *flagSet) boolVar(p *bool, name, usage string) {
	f.fs.BoolFunc(name, usage, f.option(name, "", "false", usage, func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not a boolean: use true or false")
		}
		*p = b
		return nil
	}))
}

func (f *flagSet) stringVar(p *string, name, metavar, def, usage string, check func(string) error) {
	f.add(name, metavar, def, usage, func(s string) error {
		if check != nil {
			if err := check(s); err != nil {
				return err
			}
		}
		*p = s
		return nil
	})
}

func (f *flagSet) intVar(p *int, name string, def, minimum int, usage string) {
	f.add(name, "N", strconv.Itoa(def), usage, func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("not an integer")
		}
		if n < minimum {
			return fmt.Errorf("must be at least %d", minimum)
		}
		*p = n
		return nil
	})
}

func (f *flagSet) durationVar(p *time.Duration, name, def, usage string) {
	f.add(name, "DURATION", def, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d <= 0 {
			return errors.New("must be positive")
		}
		*p = d
		return nil
	})
}

func (f *flagSet) sizeVar(p *int64, name, def, usage string) {
	f.add(name, "SIZE", def, usage, func(s string) error {
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		if n <= 0 {
			return errors.New("must be positive")
		}
		*p = n
		return nil
	})
}

func (f *flagSet) enumVar(p *string, name, def, usage string, choices ...string) {
	f.add(name, strings.Join(choices, "|"), def, usage, func(s string) error {
		for _, c := range choices {
			if s == c {
				*p = s
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(choices, ", "))
	})
}

// parse reads args (flags and positional arguments in any order; "--"
// ends the flags) and the environment, and sets every flag. It returns
// the positional arguments, which must number npos (-1: any).
func (f *flagSet) parse(args []string, npos int) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printUsage(f.env.stdout)
				return nil, err
			}
			return nil, usageError{fmt.Errorf("%s: %w (see radtriage help %s)", f.fs.Name(), err, f.fs.Name())}
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	for _, o := range f.opts {
		v, src := o.def, "--"+o.name+" (default)"
		if o.fromFlag {
			v, src = o.cmdline, "--"+o.name
		} else if e, ok := f.env.lookupEnv(envName(o.name)); ok && e != "" {
			v, src = e, envName(o.name)
		}
		o.source, o.value = src, v
		if err := o.set(v); err != nil {
			return nil, usageError{fmt.Errorf("invalid %s %q: %w", src, v, err)}
		}
	}
	if npos >= 0 && len(pos) != npos {
		if len(pos) > npos {
			return nil, usagef("%s: unexpected argument %q (see radtriage help %s)", f.fs.Name(), pos[npos], f.fs.Name())
		}
		return nil, usagef("%s: missing argument: %s (see radtriage help %s)", f.fs.Name(), f.synopsis, f.fs.Name())
	}
	return pos, nil
}

// origin names flag name's value and where it came from, for messages
// about combinations of flags: `RADTRIAGE_MAX_REQUEST_SIZE "1GiB"`.
func (f *flagSet) origin(name string) string {
	for _, o := range f.opts {
		if o.name == name {
			return fmt.Sprintf("%s %q", o.source, o.value)
		}
	}
	panic("flagSet.origin: no flag " + name)
}

func (f *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: radtriage %s", f.fs.Name())
	if f.synopsis != "" {
		fmt.Fprintf(w, " %s", f.synopsis)
	}
	if len(f.opts) > 0 {
		fmt.Fprint(w, " [flags]")
	}
	fmt.Fprintf(w, "\n\n%s\n", f.about)
	if len(f.opts) == 0 {
		return
	}
	fmt.Fprint(w, "\nFlags (each also read from its environment variable; the command line wins):\n")
	for _, o := range f.opts {
		def := o.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s %s\n        %s\n        env %s, default %s\n", o.name, o.metavar, o.usage, envName(o.name), def)
	}
}

// parseSize reads a byte count: a number with an optional unit, binary
// (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB), case-insensitive:
// "4GiB", "512MiB", "1.5GB", "1048576".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	if num == "" {
		return 0, errors.New("not a size: want a number and a unit like 512MiB or 4GiB")
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q: use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB", unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || (mult > 1 && n > (1<<63-1)/int64(mult)) {
			return 0, errors.New("too large")
		}
		return n * int64(mult), nil
	}
	x, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", num)
	}
	if x*mult >= 1<<63 {
		return 0, errors.New("too large")
	}
	return int64(x * mult), nil
}
