package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestOrthancStyleSTOW sends the STOW-RS request exactly as the Debian
// Orthanc DICOMweb plugin 1.7 client does (captured on the wire): a
// 73-character boundary "<uuid>-<uuid>" (longer than RFC 2046's 70),
// a Content-Length header in each part, chunked transfer encoding. It
// needs no Orthanc, and names the cause when TestOrthancInterop fails at
// its STOW-RS step.
func TestOrthancStyleSTOW(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	orig := series(t, "ct-head-5mm")
	s := startServer(t, "", "")
	ctx := ctxT(t, time.Minute)
	insts := Freshen(orig[:2])

	const uuid = "70ba54b9-5131-4cee-9405-37f02edf31bc"
	boundary := uuid + "-" + uuid
	var body bytes.Buffer
	for _, in := range insts {
		fmt.Fprintf(&body, "--%s\r\nContent-Type: application/dicom\r\nContent-Length: %d\r\n\r\n", boundary, len(in.Bytes))
		body.Write(in.Bytes)
		body.WriteString("\r\n")
	}
	fmt.Fprintf(&body, "--%s--", boundary)

	// An io.Reader that is not a *bytes.Buffer makes net/http send chunked.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.client.Root+"/studies", io.MultiReader(&body))
	req.Header.Set("Accept", "application/dicom+json")
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+boundary)
	resp, err := s.client.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Orthanc-shaped STOW-RS (boundary of %d characters, chunked): HTTP %d: %s", len(boundary), resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !bytes.HasPrefix([]byte(ct), []byte("application/dicom+json")) {
		t.Errorf("answer Content-Type %q, want application/dicom+json", ct)
	}
}
