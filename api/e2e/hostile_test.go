package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileHTTP sends malformed and abusive requests to the running
// binary. Bad input must get a 4xx (never a 5xx, never a crash), and the
// server must stay ready and keep storing afterwards.
func TestHostileHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	orig := series(t, "ct-head-5mm")
	s := startServer(t, "", "")
	ctx := ctxT(t, 3*time.Minute)
	addr := strings.TrimPrefix(s.BaseURL, "http://")
	stow := s.client.Root + "/studies"
	good := Freshen(orig[:2])

	post := func(t *testing.T, ct string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, stow, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := s.client.HTTP.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	multipartOf := func(parts ...[]byte) (string, []byte) {
		var buf bytes.Buffer
		bd := Boundary()
		WriteParts(&buf, bd, parts)
		return StowContentType(bd), buf.Bytes()
	}
	want4xx := func(t *testing.T, code int, body string) {
		t.Helper()
		if code < 400 || code >= 500 {
			t.Errorf("HTTP %d, want 4xx: %.300s", code, body)
		}
	}

	t.Run("garbage body, multipart type", func(t *testing.T) {
		code, body := post(t, StowContentType("xyz"), bytes.Repeat([]byte("garbage\r\n"), 1000))
		want4xx(t, code, body)
	})
	t.Run("missing boundary", func(t *testing.T) {
		_, b := multipartOf(good[0].Bytes)
		code, body := post(t, `multipart/related; type="application/dicom"`, b)
		want4xx(t, code, body)
	})
	t.Run("no content type", func(t *testing.T) {
		code, body := post(t, "", good[0].Bytes)
		want4xx(t, code, body)
	})
	t.Run("wrong content type", func(t *testing.T) {
		code, body := post(t, "application/json", []byte(`{"a":1}`))
		want4xx(t, code, body)
	})
	t.Run("empty multipart", func(t *testing.T) {
		bd := Boundary()
		code, body := post(t, StowContentType(bd), []byte("--"+bd+"--\r\n"))
		want4xx(t, code, body)
	})
	t.Run("unterminated multipart", func(t *testing.T) {
		ct, b := multipartOf(good[0].Bytes)
		code, body := post(t, ct, b[:len(b)/2])
		want4xx(t, code, body)
	})
	t.Run("truncated instance among good ones", func(t *testing.T) {
		trunc := Freshen(orig[2:3])[0]
		ct, b := multipartOf(good[0].Bytes, trunc.Bytes[:1000], good[1].Bytes)
		code, body := post(t, ct, b)
		if code != http.StatusAccepted {
			t.Errorf("HTTP %d, want 202 (two stored, one failed): %.500s", code, body)
		}
		for _, in := range good {
			if _, err := s.client.Retrieve(ctx, "/studies/"+in.Study+"/series/"+in.Series+"/instances/"+in.SOP); err != nil {
				t.Errorf("good instance of a mixed request lost: %v", err)
			}
		}
	})
	t.Run("not dicom part", func(t *testing.T) {
		ct, b := multipartOf([]byte("this is not DICOM at all"))
		code, body := post(t, ct, b)
		want4xx(t, code, body)
	})
	t.Run("hostile paths", func(t *testing.T) {
		for _, p := range []string{
			"/studies/..%2F..%2Fetc%2Fpasswd",
			"/studies/1.2.3/series/..%2F..",
			"/studies/" + strings.Repeat("1.", 200) + "1",
			"/studies/1.2.3/series/4.5.6/instances/7.8.9/frames/0",
			"/studies/1.2.3/series/4.5.6/instances/7.8.9/frames/99999999999999999999",
			"/studies?limit=-1",
			"/studies?offset=abc",
			"/studies?StudyDate=2020-19",
			"/studies?PatientName=" + strings.Repeat("*", 5000),
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.client.Root+p, nil)
			resp, err := s.client.HTTP.Do(req)
			if err != nil {
				t.Errorf("GET %s: %v", p, err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Errorf("GET %.80s: HTTP %d", p, resp.StatusCode)
			}
		}
	})
	t.Run("huge content-length then close", func(t *testing.T) {
		c := dial(t, addr)
		fmt.Fprintf(c, "POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			StowContentType("b"), int64(1)<<40)
		io.WriteString(c, "--b\r\nContent-Type: application/dicom\r\n\r\n")
		c.Write(good[0].Bytes[:4096])
		c.Close()
	})
	t.Run("early close inside a part", func(t *testing.T) {
		ct, b := multipartOf(Freshen(orig[3:4])[0].Bytes)
		c := dial(t, addr)
		fmt.Fprintf(c, "POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, len(b))
		c.Write(b[:len(b)/2])
		time.Sleep(100 * time.Millisecond)
		c.Close()
	})
	t.Run("chunked then reset", func(t *testing.T) {
		c := dial(t, addr)
		fmt.Fprintf(c, "POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n", StowContentType("b"))
		fmt.Fprintf(c, "zz\r\nnot hex\r\n")
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST on close
		}
		c.Close()
	})
	t.Run("slowloris", func(t *testing.T) {
		// Many connections that stall inside their headers; the server
		// must keep answering others meanwhile.
		var conns []net.Conn
		for i := 0; i < 64; i++ {
			c := dial(t, addr)
			io.WriteString(c, "POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/rel")
			conns = append(conns, c)
		}
		time.Sleep(500 * time.Millisecond)
		checkReady(t, ctx, s)
		for _, c := range conns {
			io.WriteString(c, "ated; boundary=b\r\nContent-Length: 100\r\n\r\n--b\r\n")
		}
		checkReady(t, ctx, s)
		for _, c := range conns {
			c.Close()
		}
	})
	t.Run("garbage request line", func(t *testing.T) {
		c := dial(t, addr)
		io.WriteString(c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 GET / HTTP/9.9\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.Contains(line, " 5") {
			t.Errorf("answer %q", line)
		}
	})

	// Still alive, still ready, still storing.
	time.Sleep(200 * time.Millisecond)
	if exited, err := s.Exited(); exited {
		t.Fatalf("server exited: %v", err)
	}
	checkReady(t, ctx, s)
	fresh := Freshen(orig[4:6])
	res, err := s.client.Store(ctx, [][]byte{fresh[0].Bytes, fresh[1].Bytes})
	if err != nil || res.Status != http.StatusOK || len(res.Stored) != 2 {
		t.Fatalf("STOW-RS after the abuse: %v %+v", err, res)
	}
	checkIndexMatchesBlobs(t, ctx, s)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkReady(t *testing.T, ctx context.Context, s *server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/readyz", nil)
	resp, err := httpClient(5 * time.Second).Do(req)
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: HTTP %d", resp.StatusCode)
	}
}
