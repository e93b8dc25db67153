package main

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testEnv returns an environ with the given variables and captured output.
func testEnv(vars map[string]string) (*environ, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &environ{
		stdout: &stdout, stderr: &stderr,
		lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
	}, &stdout, &stderr
}

// defaultPipeline is the pipeline flags' defaults.
var defaultPipeline = pipelineConfig{Workers: 1, Backend: "auto", JobLease: time.Minute, MaxAttempts: 3, Grace: 30 * time.Second}

var zeroWorkers = func() pipelineConfig { c := defaultPipeline; c.Workers = 0; return c }()

func TestParseServe(t *testing.T) {
	defaults := serveConfig{
		Addr: "127.0.0.1:8080", DataDir: "./data", Pipeline: defaultPipeline, StableAge: 5 * time.Second,
		MaxRequestSize: 4 << 30, MaxInstanceSize: 2 << 30, Worklist: defaultWorklistFlags, log: logConfig{"info", "text"},
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *serveConfig) // edits defaults into the expected config
		wantErr string
	}{
		{name: "defaults"},
		{
			name: "flags",
			args: []string{"--addr", ":9000", "--data-dir=/srv/rt", "--database-url", "postgres://rt@db/rt?sslmode=disable",
				"--redis-url", "redis://cache:6379/0", "--workers", "0", "--stable-age", "90s", "--max-request-size", "1.5GB",
				"--max-instance-size", "512MiB", "--cors-origins", "https://a.example, http://b:3000/", "--log-level", "debug", "--log-format", "json"},
			want: func(c *serveConfig) {
				*c = serveConfig{Addr: ":9000", DataDir: "/srv/rt", DatabaseURL: "postgres://rt@db/rt?sslmode=disable",
					RedisURL: "redis://cache:6379/0", Pipeline: zeroWorkers, StableAge: 90 * time.Second, MaxRequestSize: 1_500_000_000,
					MaxInstanceSize: 512 << 20, CORSOrigins: []string{"https://a.example", "http://b:3000"}, Worklist: defaultWorklistFlags,
					log: logConfig{"debug", "json"}}
			},
		},
		{
			name: "environment",
			env:  map[string]string{"RADTRIAGE_ADDR": "0.0.0.0:80", "RADTRIAGE_STABLE_AGE": "1m", "RADTRIAGE_CORS_ORIGINS": "*", "RADTRIAGE_DATABASE_URL": "sqlite:///var/rt/index.db"},
			want: func(c *serveConfig) {
				c.Addr, c.StableAge, c.CORSOrigins, c.DatabaseURL = "0.0.0.0:80", time.Minute, []string{"*"}, "sqlite:///var/rt/index.db"
			},
		},
		{
			name: "flag wins over environment",
			args: []string{"-addr", "127.0.0.1:1"},
			env:  map[string]string{"RADTRIAGE_ADDR": "0.0.0.0:80"},
			want: func(c *serveConfig) { c.Addr = "127.0.0.1:1" },
		},
		{name: "empty variable is unset", env: map[string]string{"RADTRIAGE_ADDR": ""}},
		{name: "bad addr", args: []string{"--addr", "x"}, wantErr: `invalid --addr "x": address x: missing port in address`},
		{name: "bad port", args: []string{"--addr", "h:99999"}, wantErr: `invalid --addr "h:99999": port "99999"`},
		{name: "bad env duration", env: map[string]string{"RADTRIAGE_STABLE_AGE": "abc"}, wantErr: `invalid RADTRIAGE_STABLE_AGE "abc": time: invalid duration`},
		{name: "negative duration", args: []string{"--stable-age=-1s"}, wantErr: `invalid --stable-age "-1s": must be positive`},
		{name: "bad size", args: []string{"--max-request-size", "4 parsecs"}, wantErr: `invalid --max-request-size "4 parsecs": unknown unit "parsecs"`},
		{name: "zero size", env: map[string]string{"RADTRIAGE_MAX_INSTANCE_SIZE": "0"}, wantErr: `invalid RADTRIAGE_MAX_INSTANCE_SIZE "0": must be positive`},
		{name: "instance above request", env: map[string]string{"RADTRIAGE_MAX_REQUEST_SIZE": "1GiB"},
			wantErr: `invalid --max-instance-size (default) "2GiB": larger than RADTRIAGE_MAX_REQUEST_SIZE "1GiB"`},
		{name: "backend", env: map[string]string{"RADTRIAGE_BACKEND": "cpu"}, want: func(c *serveConfig) { c.Pipeline.Backend = "cpu" }},
		{name: "bad backend", args: []string{"--backend", "tpu"}, wantErr: `invalid --backend "tpu": must be one of cpu, cuda, auto`},
		{name: "workers negative", args: []string{"--workers", "-1"}, wantErr: `invalid --workers "-1": must be at least 0`},
		{name: "workers not a number", args: []string{"--workers", "two"}, wantErr: `invalid --workers "two": not an integer`},
		{name: "database scheme", args: []string{"--database-url", "mysql://x/y"}, wantErr: `invalid --database-url "mysql://x/y": scheme "mysql"`},
		{name: "sqlite without path", args: []string{"--database-url", "sqlite://"}, wantErr: `no file path`},
		{name: "postgres without host", args: []string{"--database-url", "postgres:///db"}, wantErr: `no host`},
		{name: "postgres host in query", args: []string{"--database-url", "postgres:///db?host=/run/postgresql"},
			want: func(c *serveConfig) { c.DatabaseURL = "postgres:///db?host=/run/postgresql" }},
		{name: "redis scheme", env: map[string]string{"RADTRIAGE_REDIS_URL": "http://x"}, wantErr: `invalid RADTRIAGE_REDIS_URL "http://x": scheme "http"`},
		{name: "cors path", args: []string{"--cors-origins", "https://a/b"}, wantErr: `invalid --cors-origins "https://a/b": origin "https://a/b"`},
		{name: "log level", args: []string{"--log-level", "loud"}, wantErr: `invalid --log-level "loud": must be one of debug, info, warn, error`},
		{name: "log format", env: map[string]string{"RADTRIAGE_LOG_FORMAT": "xml"}, wantErr: `invalid RADTRIAGE_LOG_FORMAT "xml"`},
		{name: "empty data dir", args: []string{"--data-dir", " "}, wantErr: `invalid --data-dir " ": must not be empty`},
		{name: "unknown flag", args: []string{"--port", "1"}, wantErr: "flag provided but not defined: -port"},
		{name: "positional", args: []string{"now"}, wantErr: `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _, _ := testEnv(tt.env)
			got, err := parseServe(env, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if exitCode(err) != 2 {
					t.Errorf("exit code %d, want 2", exitCode(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			if tt.want != nil {
				tt.want(&want)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestParsePush(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    pushConfig
		wantErr string
	}{
		{name: "dir then flags", args: []string{"dicom", "--url", "http://h:8080/dicomweb"},
			want: pushConfig{Dir: "dicom", URL: "http://h:8080/dicomweb", Concurrency: 4, BatchSize: 64 << 20, Retries: 5}},
		{name: "flags then dir", args: []string{"--concurrency", "2", "--batch-size", "1MiB", "--retries=0", "dicom"}, env: map[string]string{"RADTRIAGE_URL": "https://pacs/dw"},
			want: pushConfig{Dir: "dicom", URL: "https://pacs/dw", Concurrency: 2, BatchSize: 1 << 20, Retries: 0}},
		{name: "dash dash", args: []string{"--url", "http://h", "--", "-odd-name"},
			want: pushConfig{Dir: "-odd-name", URL: "http://h", Concurrency: 4, BatchSize: 64 << 20, Retries: 5}},
		{name: "no url", args: []string{"dicom"}, wantErr: "--url (or RADTRIAGE_URL) is required"},
		{name: "no dir", args: []string{"--url", "http://h"}, wantErr: "missing argument: DIR"},
		{name: "two dirs", args: []string{"a", "b", "--url", "http://h"}, wantErr: `unexpected argument "b"`},
		{name: "bad url", args: []string{"a", "--url", "ftp://h"}, wantErr: `invalid --url "ftp://h": not an http:// or https:// URL`},
		{name: "zero concurrency", args: []string{"a", "--url", "http://h", "--concurrency", "0"}, wantErr: `invalid --concurrency "0": must be at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _, _ := testEnv(tt.env)
			got, err := parsePush(env, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1048576", 1 << 20, false},
		{"4GiB", 4 << 30, false},
		{"512MiB", 512 << 20, false},
		{"512mib", 512 << 20, false},
		{"1 KiB", 1024, false},
		{"2TiB", 2 << 40, false},
		{"1.5GB", 1_500_000_000, false},
		{"0.5KiB", 512, false},
		{"10B", 10, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"4G", 0, true},
		{"1.2.3MB", 0, true},
		{"99999999999TiB", 0, true},
		{"9223372036854775808", 0, true},
		{"-1MiB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{"addr": "RADTRIAGE_ADDR", "max-request-size": "RADTRIAGE_MAX_REQUEST_SIZE"} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestStabilityInterval(t *testing.T) {
	for age, want := range map[time.Duration]time.Duration{
		100 * time.Millisecond: 100 * time.Millisecond,
		5 * time.Second:        1250 * time.Millisecond,
		time.Hour:              10 * time.Second,
	} {
		if got := stabilityInterval(age); got != want {
			t.Errorf("stabilityInterval(%v) = %v, want %v", age, got, want)
		}
	}
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{name: "help", args: []string{"help"}, wantOut: "Commands:"},
		{name: "help serve", args: []string{"help", "serve"}, wantOut: "RADTRIAGE_MAX_REQUEST_SIZE"},
		{name: "serve -h", args: []string{"serve", "-h"}, wantOut: "--stable-age DURATION"},
		{name: "version", args: []string{"version"}, wantOut: "radtriage dev go1."},
		{name: "none", args: nil, wantErr: "no command given", wantStatus: 2},
		{name: "unknown", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`, wantStatus: 2},
		{name: "migrate sideways", args: []string{"migrate", "sideways"}, wantErr: `unknown direction "sideways"`, wantStatus: 2},
		{name: "migrate nothing", args: []string{"migrate"}, wantErr: "missing argument: up|down|version", wantStatus: 2},
		{name: "push missing dir", args: []string{"push", t.TempDir() + "/nope", "--url", "http://127.0.0.1:1"}, wantErr: "no such file", wantStatus: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, stdout, _ := testEnv(nil)
			err := runEnv(t.Context(), env, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if got := exitCode(err); got != tt.wantStatus {
					t.Errorf("exit status %d, want %d", got, tt.wantStatus)
				}
				return
			}
			if err != nil || errors.Is(err, flag.ErrHelp) {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("output does not contain %q:\n%s", tt.wantOut, stdout.String())
			}
		})
	}
}

func TestParseWorker(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c *workerConfig)
	}{
		{name: "needs redis", wantErr: "--redis-url (RADTRIAGE_REDIS_URL) is required"},
		{
			name: "defaults", env: map[string]string{"RADTRIAGE_REDIS_URL": "redis://r:6379/0"},
			check: func(t *testing.T, c *workerConfig) {
				if c.Pipeline != defaultPipeline || c.MetricsAddr != "" || c.DataDir != "./data" || c.Worklist != defaultWorklistFlags {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flags",
			args: []string{"--redis-url", "redis://r/1", "--database-url", "postgres://u@db/rt", "--workers", "2", "--backend", "cpu",
				"--job-lease", "20s", "--job-attempts", "5", "--job-grace", "1s", "--metrics-addr", "127.0.0.1:9101", "--models", "/m"},
			check: func(t *testing.T, c *workerConfig) {
				want := pipelineConfig{Workers: 2, Backend: "cpu", Models: "/m", JobLease: 20 * time.Second, MaxAttempts: 5, Grace: time.Second}
				if c.Pipeline != want || c.MetricsAddr != "127.0.0.1:9101" || c.DatabaseURL != "postgres://u@db/rt" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "no workers", args: []string{"--redis-url", "redis://r/1", "--workers", "0"}, wantErr: "--workers must be at least 1"},
		{name: "bad metrics addr", args: []string{"--redis-url", "redis://r/1", "--metrics-addr", "nope"}, wantErr: `invalid --metrics-addr "nope"`},
		{name: "bad attempts", args: []string{"--redis-url", "redis://r/1", "--job-attempts", "0"}, wantErr: `invalid --job-attempts "0": must be at least 1`},
		{name: "bad lease", args: []string{"--redis-url", "redis://r/1", "--job-lease", "-1s"}, wantErr: `invalid --job-lease "-1s": must be positive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _, _ := testEnv(tt.env)
			c, err := parseWorker(env, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
