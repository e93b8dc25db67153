package client

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Response
		wantErr string
	}{
		{
			name: "stored and failed",
			body: `{"00081190":{"vr":"UR","Value":["http://h/dicomweb/studies/1.2"]},
				"00081199":{"vr":"SQ","Value":[
					{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]},"00081155":{"vr":"UI","Value":["1.2.3.1"]},"00081190":{"vr":"UR","Value":["http://h/x"]}},
					{"00081155":{"vr":"UI","Value":["1.2.3.2"]},"00081196":{"vr":"US","Value":[45063]}}]},
				"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.3"]},"00081197":{"vr":"US","Value":[49152]},
					"00090010":{"vr":"LO","Value":["RADTRIAGE"]},"00091001":{"vr":"LT","Value":["part 1: the data set is truncated"]}}]}}`,
			want: Response{
				Referenced: []Referenced{
					{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.3.1", RetrieveURL: "http://h/x"},
					{SOPInstanceUID: "1.2.3.2", WarningReason: 0xB007},
				},
				Failed: []Referenced{{SOPInstanceUID: "1.2.3.3", FailureReason: 0xC000, Comment: "part 1: the data set is truncated"}},
			},
		},
		{name: "other private creator", body: `{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":[272]},"00090010":{"vr":"LO","Value":["ACME"]},"00091001":{"vr":"LT","Value":["x"]}}]}}`,
			want: Response{Failed: []Referenced{{FailureReason: 0x0110}}}},
		{name: "array form", body: `[{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":[272]}}]}}]`,
			want: Response{Failed: []Referenced{{FailureReason: 0x0110}}}},
		{name: "empty data set", body: `{}`},
		{name: "empty sequence", body: `{"00081199":{"vr":"SQ"}}`},
		{name: "not json", body: `<html>`, wantErr: "not a DICOM JSON data set"},
		{name: "reason not a number", body: `{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":["x"]}}]}}`, wantErr: "(0008,1197) is not a US value"},
		{name: "reason too large", body: `{"00081198":{"vr":"SQ","Value":[{"00081197":{"vr":"US","Value":[70000]}}]}}`, wantErr: "not a US value"},
		{name: "item not an object", body: `{"00081199":{"vr":"SQ","Value":[3]}}`, wantErr: "(0008,1199) item 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResponse([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalRefs(got.Referenced, tt.want.Referenced) || !equalRefs(got.Failed, tt.want.Failed) {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func equalRefs(a, b []Referenced) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestResponseApply(t *testing.T) {
	resp := &Response{
		Referenced: []Referenced{{SOPInstanceUID: "1"}, {SOPInstanceUID: "2", WarningReason: 0xB007}},
		Failed:     []Referenced{{SOPInstanceUID: "3", FailureReason: 0xA900, Comment: "no Rows"}, {FailureReason: 0xC000}},
	}
	batch := []File{{Path: "f1", SOPInstanceUID: "1"}, {Path: "f2", SOPInstanceUID: "2"}, {Path: "f3", SOPInstanceUID: "3"},
		{Path: "f4", SOPInstanceUID: "4"}, {Path: "f5", SOPInstanceUID: "5"}}
	got := resp.apply(batch)
	want := []struct {
		status Status
		code   uint16
		reason string
	}{
		{Stored, 0, ""},
		{Warned, 0xB007, "0xB007 data set does not match SOP class"},
		{Failed, 0xA900, "0xA900 data set does not match SOP class: no Rows"},
		{Failed, 0xC000, "0xC000 cannot understand (the server could not read the SOP Instance UID)"},
		{Failed, 0, "the server's response does not mention this instance"},
	}
	for i, w := range want {
		g := got[i]
		if g.Path != batch[i].Path || g.Status != w.status || g.Code != w.code || g.Reason != w.reason {
			t.Errorf("%s: got %v 0x%04X %q, want %v 0x%04X %q", batch[i].Path, g.Status, g.Code, g.Reason, w.status, w.code, w.reason)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-4", 0},
		{"86400", maxRetryAfter},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSummaryPrint(t *testing.T) {
	s := &Summary{
		Results: []Result{
			{Path: "a", SOPInstanceUID: "1", Status: Stored},
			{Path: "b", SOPInstanceUID: "2", Status: Failed, Code: 0xA900, Reason: "0xA900 data set does not match SOP class"},
			{Path: "c", SOPInstanceUID: "3", Status: Warned, Code: 0xB007, Reason: "0xB007 data set does not match SOP class"},
		},
		Skipped: []Skipped{{Path: "DIRFILE", Reason: "media storage directory (DICOMDIR), not an instance"}},
	}
	var buf bytes.Buffer
	s.Print(&buf)
	want := `1 stored, 1 stored with warnings, 1 failed, 1 skipped
  failed  b (2): 0xA900 data set does not match SOP class
  warning c (3): 0xB007 data set does not match SOP class
  skipped DIRFILE: media storage directory (DICOMDIR), not an instance
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	if s.OK() {
		t.Error("OK() with a failure")
	}
}

func TestBarLine(t *testing.T) {
	start := time.Unix(0, 0)
	b := &Bar{total: 4 << 20, width: 10, start: start}
	b.done = 1 << 20
	if got, want := b.line(start.Add(time.Second)), "[==>       ]  25%  1.0 MiB / 4.0 MiB  1.0 MiB/s"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
	b.done = 5 << 20 // retries may overshoot before they take bytes back
	if got, want := b.line(start.Add(2*time.Second)), "[==========] 100%  4.0 MiB / 4.0 MiB  2.0 MiB/s"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}

func TestBackoffDelay(t *testing.T) {
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 250 * time.Millisecond, 500 * time.Millisecond},
		{3, 2 * time.Second, 4 * time.Second},
		{10, maxBackoff / 2, maxBackoff},
		{100, maxBackoff / 2, maxBackoff}, // no overflow
	} {
		for range 20 {
			if d := backoffDelay(500*time.Millisecond, tt.attempt); d < tt.min || d > tt.max {
				t.Errorf("backoffDelay(500ms, %d) = %v, want within [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}
