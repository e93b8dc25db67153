package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RepoRoot returns the directory holding go.mod, searching up from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FixturesDir returns ../shared/dicom relative to the repository root.
func FixturesDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "..", "shared", "dicom"), nil
}

// BuildServer compiles ./cmd/radtriage into dir and returns the binary path.
func BuildServer(ctx context.Context, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "radtriage")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/radtriage")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/radtriage: %w\n%s", err, out)
	}
	return bin, nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a server child process with its log captured to a file.
type Process struct {
	Name    string
	BaseURL string // http://127.0.0.1:PORT
	Port    int
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Start runs bin with args, logging to logPath, and returns at once.
func Start(name, bin string, args, env []string, port int, logPath string) (*Process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{
		Name:    name,
		BaseURL: "http://127.0.0.1:" + strconv.Itoa(port),
		Port:    port,
		LogPath: logPath,
		cmd:     cmd,
		logFile: lf,
		done:    make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// WaitReady polls url (absolute) until it answers 200, the process exits,
// or the timeout passes.
func (p *Process) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited before ready (%v); log tail:\n%s", p.Name, err, p.LogTail(40))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %v (last: %s); log tail:\n%s", p.Name, url, timeout, last, p.LogTail(40))
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to end (SIGTERM), then kills it after grace.
// It returns the exit error of a process that did not end cleanly.
func (p *Process) Stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		if exited, _ := p.Exited(); exited {
			err = p.waitErr
			return
		}
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
			err = p.waitErr
		case <-time.After(grace):
			p.signal(syscall.SIGKILL)
			<-p.done
			err = fmt.Errorf("%s did not stop within %v after SIGTERM", p.Name, grace)
		}
	})
	return err
}

func (p *Process) signal(sig syscall.Signal) {
	// The child leads its own process group; signal only it (by its id).
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// LogTail returns the last n lines of the process log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogContains reports whether the process log contains s.
func (p *Process) LogContains(s string) bool {
	b, _ := os.ReadFile(p.LogPath)
	return bytes.Contains(b, []byte(s))
}

// PeakRSS returns VmHWM (peak resident set size) of the live process in
// bytes, from /proc/PID/status.
func (p *Process) PeakRSS() (int64, error) { return procStatusBytes(p.PID(), "VmHWM:") }

// CPUTime returns the user+system CPU time the live process has used,
// from /proc/PID/stat (utime and stime, in clock ticks of 1/100 s).
func (p *Process) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", p.PID())
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", p.PID())
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", p.PID(), err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// RSS returns VmRSS of the live process in bytes.
func (p *Process) RSS() (int64, error) { return procStatusBytes(p.PID(), "VmRSS:") }

func procStatusBytes(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fields := strings.Fields(line[len(key):])
		if len(fields) < 1 {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", key, pid)
}

// ServerOptions configure one radtriage serve process.
type ServerOptions struct {
	Bin         string // radtriage binary
	DataDir     string
	DatabaseURL string // "" for SQLite in DataDir
	StableAge   time.Duration
	Port        int      // 0: pick a free one
	ExtraArgs   []string // appended to the serve flags
	LogPath     string   // "" for DataDir/../radtriage-PORT.log
}

// StartServer starts `radtriage serve` and waits for /readyz.
func StartServer(ctx context.Context, o ServerOptions) (*Process, error) {
	port := o.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if o.StableAge == 0 {
		o.StableAge = 5 * time.Second
	}
	args := []string{"serve",
		"--addr", "127.0.0.1:" + strconv.Itoa(port),
		"--data-dir", o.DataDir,
		"--stable-age", o.StableAge.String(),
	}
	if o.DatabaseURL != "" {
		args = append(args, "--database-url", o.DatabaseURL)
	}
	args = append(args, o.ExtraArgs...)
	return startReady(ctx, "radtriage", o.Bin, args, port, o.LogPath, o.DataDir, "radtriage", "/readyz")
}

// startReady starts bin with args, logging to logPath (default
// dataDir/../LOGNAME-PORT.log), and waits up to a minute for ready (a
// path) to answer 200.
func startReady(ctx context.Context, name, bin string, args []string, port int, logPath, dataDir, logName, ready string) (*Process, error) {
	if logPath == "" {
		logPath = filepath.Join(filepath.Dir(dataDir), fmt.Sprintf("%s-%d.log", logName, port))
	}
	p, err := Start(name, bin, args, nil, port, logPath)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, p.BaseURL+ready, 60*time.Second); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// DICOMweb returns the DICOMweb root of a radtriage process, no trailing slash.
func (p *Process) DICOMweb() string { return p.BaseURL + "/dicomweb" }
