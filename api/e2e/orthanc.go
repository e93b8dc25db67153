package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoOrthanc: the Orthanc binary or its DICOMweb plugin is not installed.
var ErrNoOrthanc = errors.New("e2e: Orthanc or its DICOMweb plugin not found")

// FindOrthanc returns the Orthanc binary and the DICOMweb plugin library,
// or an error wrapping ErrNoOrthanc.
func FindOrthanc() (bin, plugin string, err error) {
	bin = os.Getenv("RADTRIAGE_TEST_ORTHANC")
	if bin == "" {
		if p, err := exec.LookPath("Orthanc"); err == nil {
			bin = p
		} else {
			bin = "/usr/sbin/Orthanc"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrNoOrthanc, err)
	}
	plugin = os.Getenv("RADTRIAGE_TEST_DICOMWEB_PLUGIN")
	if plugin == "" {
		for _, p := range []string{
			"/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
			"/usr/lib/orthanc/plugins/libOrthancDicomWeb.so",
		} {
			if _, err := os.Stat(p); err == nil {
				plugin = p
				break
			}
		}
	}
	if plugin == "" {
		return "", "", fmt.Errorf("%w: libOrthancDicomWeb.so", ErrNoOrthanc)
	}
	if _, err := os.Stat(plugin); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrNoOrthanc, err)
	}
	return bin, plugin, nil
}

// OrthancConfig returns the configuration the tests and the benchmark give
// Orthanc: loopback HTTP on httpPort, no DIMSE listener, storage and index
// (the default SQLite index) under dir, no authentication, uncompressed
// and fsynced storage, the DICOMweb plugin at /dicom-web/ with the named
// remote DICOMweb servers.
func OrthancConfig(dir, plugin string, httpPort int, servers map[string]string) map[string]any {
	srv := map[string]any{}
	for name, url := range servers {
		srv[name] = []string{url}
	}
	return map[string]any{
		"Name":                   "radtriage-e2e",
		"HttpPort":               httpPort,
		"RemoteAccessAllowed":    false,
		"AuthenticationEnabled":  false,
		"HttpDescribeErrors":     true,
		"HttpCompressionEnabled": false,
		"DicomServerEnabled":     false,
		"StorageDirectory":       filepath.Join(dir, "storage"),
		"IndexDirectory":         filepath.Join(dir, "index"),
		"StorageCompression":     false,
		"SyncStorageArea":        true,
		"OverwriteInstances":     false,
		"StableAge":              60,
		"HttpTimeout":            120,
		"HttpRequestTimeout":     120,
		"Plugins":                []string{plugin},
		"DicomWeb": map[string]any{
			"Enable":           true,
			"Root":             "/dicom-web/",
			"EnableWado":       false,
			"Servers":          srv,
			"ChunkedTransfers": true,
		},
	}
}

// StartOrthanc writes cfg (see OrthancConfig) to dir/orthanc.json, starts
// Orthanc and waits until its REST API answers.
func StartOrthanc(ctx context.Context, bin, dir string, cfg map[string]any) (*Process, error) {
	for _, k := range []string{"StorageDirectory", "IndexDirectory"} {
		if d, ok := cfg[k].(string); ok {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	port, _ := cfg["HttpPort"].(int)
	p, err := Start("Orthanc", bin, []string{cfgPath}, nil, port, filepath.Join(dir, "orthanc.log"))
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, p.BaseURL+"/system", 60*time.Second); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Orthanc is a small client of Orthanc's REST API.
type Orthanc struct {
	BaseURL string
	HTTP    *http.Client
}

// HTTPError is a non-2xx answer, with its body (Orthanc describes errors).
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

// Do sends a request and decodes a JSON answer into out (nil: discard).
func (o *Orthanc) Do(ctx context.Context, method, path string, body []byte, out any) error {
	_, err := o.do(ctx, method, path, body, out)
	return err
}

// Raw sends a request and returns the answer's bytes.
func (o *Orthanc) Raw(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	return o.do(ctx, method, path, body, nil)
}

func (o *Orthanc) do(ctx context.Context, method, path string, body []byte, out any) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.BaseURL+path, r)
	if err != nil {
		return nil, err
	}
	c := o.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, &HTTPError{method, o.BaseURL + path, resp.StatusCode, string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("%s %s: decode answer: %w: %.300s", method, path, err, b)
		}
	}
	return b, nil
}

// PostJSON sends v as JSON and decodes the answer into out.
func (o *Orthanc) PostJSON(ctx context.Context, path string, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return o.Do(ctx, http.MethodPost, path, b, out)
}

// OrthancInstance is Orthanc's answer to POST /instances.
type OrthancInstance struct {
	ID, ParentStudy, ParentSeries, Status string
}

// Upload stores one DICOM file through POST /instances.
func (o *Orthanc) Upload(ctx context.Context, dicom []byte) (*OrthancInstance, error) {
	var out OrthancInstance
	if err := o.Do(ctx, http.MethodPost, "/instances", dicom, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
