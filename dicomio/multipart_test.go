package dicomio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func multipartBody(t testing.TB, parts ...[2]string) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	w := NewMultipartWriter(&buf, MediaTypeDICOM)
	for _, p := range parts {
		pw, err := w.CreatePart(p[0], "")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p[1])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.ContentType()
}

func TestMultipartRoundTrip(t *testing.T) {
	body, ct := multipartBody(t,
		[2]string{"application/dicom; transfer-syntax=1.2.840.10008.1.2.1", "first"},
		[2]string{"application/octet-stream", "second"},
		[2]string{"Application/DICOM", "third"},
	)
	r, err := NewMultipartReader(bytes.NewReader(body), ct)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		ct, ts, body string
		refused      bool
	}
	var parts []got
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, got{p.ContentType, p.TransferSyntax, string(b), p.Refusal != ""})
	}
	want := []got{
		{"application/dicom", "1.2.840.10008.1.2.1", "first", false},
		{"application/octet-stream", "", "second", true},
		{"application/dicom", "", "third", false},
	}
	if len(parts) != len(want) {
		t.Fatalf("got %d parts, want %d: %+v", len(parts), len(want), parts)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("part %d = %+v, want %+v", i, parts[i], want[i])
		}
	}
}

func TestMultipartUnreadPartsAreSkipped(t *testing.T) {
	body, ct := multipartBody(t, [2]string{MediaTypeDICOM, strings.Repeat("x", 100000)}, [2]string{MediaTypeDICOM, "y"})
	r, err := NewMultipartReader(bytes.NewReader(body), ct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.NextPart(); err != nil {
		t.Fatal(err)
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(p); string(b) != "y" {
		t.Errorf("second part = %q", b)
	}
}

func TestMultipartContentType(t *testing.T) {
	for _, tc := range []struct {
		name, ct    string
		mediaErr    bool
		boundaryErr bool
	}{
		{name: "ok", ct: `multipart/related; type="application/dicom"; boundary=abc`},
		{name: "no type", ct: `multipart/related; boundary=abc`},
		{name: "unquoted type", ct: `multipart/related; type=application/dicom; boundary=abc`},
		{name: "unquoted json type", ct: `multipart/related; type=application/dicom+json; boundary=abc`, mediaErr: true},
		{name: "case", ct: `Multipart/Related; Type="Application/DICOM"; Boundary=abc`},
		{name: "empty", ct: ``, mediaErr: true},
		{name: "json", ct: `application/json`, mediaErr: true},
		{name: "bare dicom", ct: `application/dicom`, mediaErr: true},
		{name: "form", ct: `multipart/form-data; boundary=abc`, mediaErr: true},
		{name: "dicom+json root", ct: `multipart/related; type="application/dicom+json"; boundary=abc`, mediaErr: true},
		{name: "no boundary", ct: `multipart/related; type="application/dicom"`, boundaryErr: true},
		{name: "empty boundary", ct: `multipart/related; type="application/dicom"; boundary=""`, boundaryErr: true},
		{name: "orthanc boundary", ct: `multipart/related; type="application/dicom"; boundary=` + strings.Repeat("b", 73)},
		{name: "long boundary", ct: `multipart/related; boundary=` + strings.Repeat("b", 257), boundaryErr: true},
		{name: "garbled", ct: `multipart/related; type=`, boundaryErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMultipartReader(strings.NewReader(""), tc.ct)
			var me *MediaTypeError
			if got := errors.As(err, &me); got != tc.mediaErr {
				t.Errorf("MediaTypeError = %v (err %v), want %v", got, err, tc.mediaErr)
			}
			if got := errors.Is(err, ErrNoBoundary); got != tc.boundaryErr {
				t.Errorf("ErrNoBoundary = %v (err %v), want %v", got, err, tc.boundaryErr)
			}
		})
	}
}

func TestMultipartPartWithoutTypeNeedsRootType(t *testing.T) {
	body := "--b\r\n\r\nno header\r\n--b\r\nContent-Type: application/dicom\r\n\r\nok\r\n--b--\r\n"
	r, err := NewMultipartReader(strings.NewReader(body), "multipart/related; boundary=b")
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NextPart()
	if err != nil || p.Refusal == "" {
		t.Fatalf("first part: err %v refusal %q, want a refusal", err, p.Refusal)
	}
	p, err = r.NextPart()
	if err != nil || p.Refusal != "" {
		t.Fatalf("second part: err %v refusal %q", err, p.Refusal)
	}
}

func TestMultipartBroken(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"no boundary line", "garbage without any boundary"},
		{"truncated part", "--b\r\nContent-Type: application/dicom\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewMultipartReader(strings.NewReader(tc.body), `multipart/related; type="application/dicom"; boundary=b`)
			if err != nil {
				t.Fatal(err)
			}
			var me *MultipartError
			for {
				p, err := r.NextPart()
				if err == io.EOF {
					t.Fatal("broken body ended cleanly")
				}
				if err != nil {
					if !errors.As(err, &me) {
						t.Fatalf("error %T %v, want *MultipartError", err, err)
					}
					return
				}
				if _, err := io.Copy(io.Discard, p); err != nil {
					if !errors.As(err, &me) {
						t.Fatalf("part read error %T %v, want *MultipartError", err, err)
					}
				}
			}
		})
	}
}

func FuzzMultipart(f *testing.F) {
	body, ct := multipartBody(f, [2]string{MediaTypeDICOM, "DICM"}, [2]string{"text/plain", "x"})
	f.Add(body, ct)
	f.Add([]byte("--b\r\n\r\nabc\r\n--b--\r\n"), "multipart/related; boundary=b")
	f.Add([]byte("--b\r\nContent-Type: application/dicom\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=41\r\n--b--"), `multipart/related; type="application/dicom"; boundary=b`)
	f.Add([]byte(""), "multipart/related; boundary=b")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		r, err := NewMultipartReader(bytes.NewReader(body), ct)
		if err != nil {
			return
		}
		// Every part is read through a small buffer: memory stays bounded
		// whatever the body, and the loop ends because the body does.
		buf := make([]byte, 512)
		for parts := 0; ; parts++ {
			if parts > len(body)+1 {
				t.Fatalf("more parts (%d) than body bytes (%d)", parts, len(body))
			}
			p, err := r.NextPart()
			if err != nil {
				if err != io.EOF {
					var me *MultipartError
					if !errors.As(err, &me) {
						t.Fatalf("NextPart error %T %v, want *MultipartError", err, err)
					}
				}
				return
			}
			if p.Refusal == "" && p.ContentType != MediaTypeDICOM {
				t.Fatalf("accepted part of type %q", p.ContentType)
			}
			n := 0
			for {
				k, err := p.Read(buf)
				n += k
				if n > len(body) {
					t.Fatalf("part longer (%d) than body (%d)", n, len(body))
				}
				if err != nil {
					break
				}
			}
		}
	})
}
