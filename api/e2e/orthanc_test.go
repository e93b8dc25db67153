package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// startOrthanc starts an Orthanc with the DICOMweb plugin whose remote
// DICOMweb servers are servers (name → root URL with trailing slash).
func startOrthanc(t *testing.T, servers map[string]string) (*Process, *Orthanc) {
	t.Helper()
	bin, plugin, err := FindOrthanc()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := StartOrthanc(ctx, bin, dir, OrthancConfig(dir, plugin, port, servers))
	if err != nil {
		t.Fatalf("start Orthanc: %v", err)
	}
	t.Cleanup(func() {
		p.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("Orthanc log tail (%s):\n%s", p.LogPath, p.LogTail(40))
		}
	})
	return p, &Orthanc{BaseURL: p.BaseURL, HTTP: httpClient(5 * time.Minute)}
}

// TestOrthancInterop: Orthanc's DICOMweb client (plugin 1.7 on Debian)
// stores a study in radtriage with STOW-RS, finds it with QIDO-RS, and
// after deleting its own copy retrieves it back with WADO-RS. Every
// instance must come back byte-identical to the original file.
func TestOrthancInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Orthanc and radtriage")
	}
	orig := series(t, "ct-head-5mm")
	if _, _, err := FindOrthanc(); err != nil {
		skipOrFail(t, "%v", err)
	}
	s := startServer(t, "", "")
	runInterop(t, orig, s.DICOMweb()+"/", s.client)
	checkIndexMatchesBlobs(t, ctxT(t, time.Minute), s)
}

// TestOrthancInteropControl runs the same conversation between two
// Orthancs. It checks the harness, not radtriage: if it fails, the
// interop test's verdict on radtriage means nothing.
func TestOrthancInteropControl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Orthancs")
	}
	orig := series(t, "ct-head-5mm")
	target, _ := startOrthanc(t, nil)
	runInterop(t, orig, target.BaseURL+"/dicom-web/", &Client{Root: target.BaseURL + "/dicom-web", HTTP: httpClient(time.Minute)})
}

func runInterop(t *testing.T, orig []Instance, targetRoot string, target *Client) {
	ctx := ctxT(t, 5*time.Minute)
	_, o := startOrthanc(t, map[string]string{"radtriage": targetRoot})
	bySOP := map[string]Instance{}
	for _, in := range orig {
		bySOP[in.SOP] = in
	}
	studyUID := orig[0].Study

	// 1. Load the study into Orthanc; Orthanc must keep the files as sent,
	// or the comparisons below would compare against the wrong bytes.
	var orthancStudy string
	for _, in := range orig {
		res, err := o.Upload(ctx, in.Bytes)
		if err != nil {
			t.Fatalf("Orthanc POST /instances %s: %v", in.Name, err)
		}
		orthancStudy = res.ParentStudy
		got, err := o.Raw(ctx, http.MethodGet, "/instances/"+res.ID+"/file", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, in.Bytes) {
			t.Fatalf("Orthanc changed %s on ingest (%d bytes in, %d stored): byte comparisons below would not be meaningful", in.Name, len(in.Bytes), len(got))
		}
	}

	// 2. STOW-RS from Orthanc's client.
	var stow map[string]any
	err := o.PostJSON(ctx, "/dicom-web/servers/radtriage/stow",
		map[string]any{"Resources": []string{orthancStudy}, "Synchronous": true}, &stow)
	if err != nil {
		t.Fatalf("STOW-RS through Orthanc's client failed (see Orthanc's log for the status the target answered, and the target's log; TestOrthancStyleSTOW replays the request shape): %v", err)
	}
	t.Logf("Orthanc stow: %v", stow)

	// 3. What the target stored is what Orthanc sent (= the original).
	parts, err := target.Retrieve(ctx, "/studies/"+studyUID)
	if err != nil {
		t.Fatalf("WADO-RS after STOW-RS: %v", err)
	}
	checkSameInstances(t, "target WADO-RS after Orthanc STOW-RS", parts, bySOP)

	// 4. QIDO-RS through Orthanc's client, at each level, and metadata.
	var studies []Dataset
	if err := o.PostJSON(ctx, "/dicom-web/servers/radtriage/get",
		map[string]any{"Uri": "/studies", "Arguments": map[string]string{"StudyInstanceUID": studyUID, "includefield": "00201208"}}, &studies); err != nil {
		t.Fatalf("Orthanc QIDO-RS /studies through its client: %v", err)
	}
	if len(studies) != 1 || studies[0].String("0020000D") != studyUID {
		t.Fatalf("QIDO-RS /studies?StudyInstanceUID=…: %d results %v", len(studies), studies)
	}
	if n := studies[0].Int("00201208"); n != len(orig) {
		t.Errorf("QIDO-RS NumberOfStudyRelatedInstances = %d, want %d", n, len(orig))
	}
	// The plugin's /qido answers in its own flavour of JSON ("Value" is a
	// plain string, plus "Name", "Group", "Element").
	var seriesDS []map[string]struct{ Value any }
	if err := o.PostJSON(ctx, "/dicom-web/servers/radtriage/qido",
		map[string]any{"Uri": "/studies/" + studyUID + "/series"}, &seriesDS); err != nil {
		t.Fatalf("Orthanc qido /series: %v", err)
	}
	if len(seriesDS) != 1 || seriesDS[0]["0020000E"].Value != orig[0].Series {
		t.Errorf("QIDO-RS series through Orthanc's qido: %v", seriesDS)
	}
	var inst []Dataset
	if err := o.PostJSON(ctx, "/dicom-web/servers/radtriage/get",
		map[string]any{"Uri": "/studies/" + studyUID + "/series/" + orig[0].Series + "/instances"}, &inst); err != nil {
		t.Fatalf("Orthanc QIDO-RS /instances through its client: %v", err)
	}
	if len(inst) != len(orig) {
		t.Errorf("QIDO-RS instances: %d, want %d", len(inst), len(orig))
	}
	var meta []Dataset
	if err := o.PostJSON(ctx, "/dicom-web/servers/radtriage/get",
		map[string]any{"Uri": "/studies/" + studyUID + "/metadata"}, &meta); err != nil {
		t.Fatalf("Orthanc WADO-RS metadata through its client: %v", err)
	}
	if len(meta) != len(orig) {
		t.Errorf("WADO-RS metadata: %d datasets, want %d", len(meta), len(orig))
	}

	// 5. Delete in Orthanc, then retrieve from the target.
	if err := o.Do(ctx, http.MethodDelete, "/studies/"+orthancStudy, nil, nil); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := o.Do(ctx, http.MethodGet, "/studies", nil, &left); err != nil || len(left) != 0 {
		t.Fatalf("Orthanc studies after delete: %v %v", left, err)
	}
	var retr map[string]any
	err = o.PostJSON(ctx, "/dicom-web/servers/radtriage/retrieve",
		map[string]any{"Resources": []map[string]string{{"Study": studyUID}}, "Synchronous": true}, &retr)
	if err != nil {
		t.Fatalf("WADO-RS retrieve through Orthanc's client failed (see Orthanc's log): %v", err)
	}
	t.Logf("Orthanc retrieve: %v", retr)

	// 6. Every retrieved instance, as Orthanc stored it, equals the original.
	var objs []struct{ ID string }
	if err := o.Do(ctx, http.MethodGet, "/studies/"+orthancStudy+"/instances", nil, &objs); err != nil {
		t.Fatalf("Orthanc instances after retrieve: %v", err)
	}
	var ids []string
	for _, x := range objs {
		ids = append(ids, x.ID)
	}
	var got [][]byte
	for _, id := range ids {
		b, err := o.Raw(ctx, http.MethodGet, "/instances/"+id+"/file", nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	checkSameInstances(t, "Orthanc after WADO-RS retrieve", got, bySOP)
}

// checkSameInstances checks that parts are exactly the originals, one each.
func checkSameInstances(t *testing.T, what string, parts [][]byte, bySOP map[string]Instance) {
	t.Helper()
	seen := map[string]bool{}
	for i, p := range parts {
		in, ok := ParseInstance(p)
		if !ok {
			t.Errorf("%s: part %d (%d bytes) is not a Part 10 instance", what, i, len(p))
			continue
		}
		want, ok := bySOP[in.SOP]
		if !ok {
			t.Errorf("%s: unexpected SOP %s", what, in.SOP)
			continue
		}
		if seen[in.SOP] {
			t.Errorf("%s: SOP %s twice", what, in.SOP)
		}
		seen[in.SOP] = true
		if !bytes.Equal(p, want.Bytes) {
			t.Errorf("%s: %s (%s) differs from the original: %s", what, in.SOP, want.Name, firstDiff(p, want.Bytes))
		}
	}
	if len(seen) != len(bySOP) {
		t.Errorf("%s: %d of %d instances", what, len(seen), len(bySOP))
	}
}

func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d (got %d bytes, want %d)", i, len(got), len(want))
		}
	}
	return fmt.Sprintf("lengths %d and %d, equal up to %d", len(got), len(want), n)
}
