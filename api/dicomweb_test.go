package api

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/dicomio/codec"
	"github.com/radtriage/radtriage/internal/testenv"
	"github.com/radtriage/radtriage/store"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestDICOMweb(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testCTHead(t, b)
			testCompressedFrames(t, b)
			testMixedFixtures(t, b)
			testHostile(t, b)
			testLimits(t, b)
		})
	}
}

// ctHead STOWs ct-head-5mm: 28 slices and DIRFILE (refused per part).
func testCTHead(t *testing.T, b backend) {
	dir := fixtureDir(t, "ct-head-5mm")
	archive := b.open(t)
	h := New(archive, Config{MaxRequestBytes: 1 << 30, MaxInstanceBytes: 64 << 20, Logger: quietLogger()})

	var files []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "I") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) != 28 {
		t.Fatalf("%d slices in %s, want 28", len(files), dir)
	}
	var parts []part
	for _, f := range files {
		parts = append(parts, filePart(t, f))
	}
	parts = append(parts, filePart(t, filepath.Join(dir, "DIRFILE")))

	rec, ds := stow(t, h, "/dicomweb/studies", parts)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("STOW ct-head: status %d, want 202\n%s", rec.Code, rec.Body)
	}
	refs, failed := ds.items("00081199"), ds.items("00081198")
	if len(refs) != 28 || len(failed) != 1 {
		t.Fatalf("STOW ct-head: %d referenced, %d failed; want 28 and 1\n%s", len(refs), len(failed), rec.Body)
	}
	if failed[0].num("00081197") <= 0 || !strings.Contains(failed[0].str(tagFailureText), "part 29") {
		t.Errorf("DIRFILE failure item lacks a reason: %v", failed[0])
	}
	studyURL := ds.str("00081190")
	study := strings.TrimPrefix(localPath(t, studyURL), "/dicomweb/studies/")
	paths := map[string]string{} // instance path → file
	series := map[string]bool{}
	for i, r := range refs {
		if r.str("00081150") == "" || r.str("00081155") == "" {
			t.Errorf("referenced item %d lacks UIDs: %v", i, r)
		}
		if _, ok := r["00081196"]; ok {
			t.Errorf("referenced item %d has a warning on first store", i)
		}
		p := localPath(t, r.str("00081190"))
		paths[p] = files[i]
		series[strings.Split(p, "/")[5]] = true
		if !strings.HasPrefix(p, "/dicomweb/studies/"+study+"/series/") {
			t.Errorf("instance URL %s not under study %s", p, study)
		}
	}

	t.Run("QIDO", func(t *testing.T) {
		rec := do(t, h, "GET", "/dicomweb/studies?StudyInstanceUID="+study, nil, "Accept", "application/dicom+json")
		studies := decodeList(t, rec, http.StatusOK)
		if len(studies) != 1 {
			t.Fatalf("QIDO studies: %d results, want 1", len(studies))
		}
		st := studies[0]
		if st.num("00201206") != len(series) || st.num("00201208") != 28 {
			t.Errorf("NumberOfStudyRelatedSeries/Instances = %d/%d, want %d/28", st.num("00201206"), st.num("00201208"), len(series))
		}
		for _, tag := range studyReturn {
			if _, ok := st[tag]; !ok {
				t.Errorf("study result lacks required %s", tag)
			}
		}
		wantVR := map[string]string{"00080020": "DA", "00100010": "PN", "0020000D": "UI", "00201208": "IS", "00081190": "UR", "00080061": "CS"}
		for tag, vr := range wantVR {
			if st[tag].VR != vr {
				t.Errorf("study %s VR %q, want %s", tag, st[tag].VR, vr)
			}
		}
		if st.str("00081190") != studyURL {
			t.Errorf("study RetrieveURL %q, want %q", st.str("00081190"), studyURL)
		}
		pid := st.str("00100020")

		for _, tc := range []struct {
			name, target string
			want         int
		}{
			{"by PatientID tag", "/dicomweb/studies?00100020=" + pid, 1},
			{"by PatientID keyword", "/dicomweb/studies?PatientID=" + pid + "&fuzzymatching=true", 1},
			{"no match", "/dicomweb/studies?PatientID=nobody-here", 0},
			{"date range", "/dicomweb/studies?StudyInstanceUID=" + study + "&StudyDate=19000101-", 1},
			{"modality", "/dicomweb/studies?StudyInstanceUID=" + study + "&ModalitiesInStudy=CT", 1},
			{"series of study", "/dicomweb/studies/" + study + "/series", len(series)},
			{"flat series", "/dicomweb/series?StudyInstanceUID=" + study + "&Modality=CT", len(series)},
			{"instances of study", "/dicomweb/studies/" + study + "/instances", 28},
			{"flat instances", "/dicomweb/instances?StudyInstanceUID=" + study, 28},
			{"limit", "/dicomweb/instances?StudyInstanceUID=" + study + "&limit=5&offset=3", 5},
			{"repeated uid", "/dicomweb/studies?StudyInstanceUID=1.2.3.4&StudyInstanceUID=" + study, 1},
			{"uid list", "/dicomweb/studies?StudyInstanceUID=1.2.3.4," + study, 1},
			{"wildcard name", "/dicomweb/studies?StudyInstanceUID=" + study + "&PatientName=*", 1},
			{"offset beyond", "/dicomweb/instances?StudyInstanceUID=" + study + "&offset=100", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := decodeList(t, do(t, h, "GET", tc.target, nil), http.StatusOK)
				if len(got) != tc.want {
					t.Errorf("%s: %d results, want %d", tc.target, len(got), tc.want)
				}
			})
		}

		se := decodeList(t, do(t, h, "GET", "/dicomweb/studies/"+study+"/series", nil), http.StatusOK)[0]
		seriesUID := se.str("0020000E")
		total := 0
		for _, s := range decodeList(t, do(t, h, "GET", "/dicomweb/studies/"+study+"/series", nil), http.StatusOK) {
			total += s.num("00201209")
		}
		if total != 28 || se.str("00080060") != "CT" {
			t.Errorf("series: NumberOfSeriesRelatedInstances sum %d (want 28), Modality %q", total, se.str("00080060"))
		}
		insts := decodeList(t, do(t, h, "GET", "/dicomweb/studies/"+study+"/series/"+seriesUID+"/instances?includefield=00083002", nil), http.StatusOK)
		for _, in := range insts {
			if in.num("00280010") != 512 || in.num("00280011") != 512 || in.num("00280100") != 16 {
				t.Errorf("instance Rows/Columns/BitsAllocated = %d/%d/%d", in.num("00280010"), in.num("00280011"), in.num("00280100"))
			}
			if in["00280010"].VR != "US" || in["00200013"].VR != "IS" || in.str("00083002") == "" {
				t.Errorf("instance attributes: %v", in)
			}
			if _, ok := paths[localPath(t, in.str("00081190"))]; !ok {
				t.Errorf("instance RetrieveURL %s unknown", in.str("00081190"))
			}
		}

		// includefield=all gives StudyDescription; application/json is honoured.
		rec = do(t, h, "GET", "/dicomweb/studies?StudyInstanceUID="+study+"&includefield=all", nil, "Accept", "application/json")
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Accept application/json: Content-Type %q", ct)
		}
		if _, ok := decodeList(t, rec, http.StatusOK)[0]["00081030"]; !ok {
			t.Error("includefield=all lacks StudyDescription")
		}
		rec = do(t, h, "GET", "/dicomweb/studies?StudyInstanceUID="+study+"&includefield=StudyDescription,00100030", nil)
		if got := decodeList(t, rec, http.StatusOK)[0]; got["00081030"].VR != "LO" || got["00080056"].VR != "" {
			t.Errorf("includefield=StudyDescription: %v", got)
		}

		for _, tc := range []struct{ name, target string }{
			{"unknown keyword", "/dicomweb/studies?PatientFavouriteColour=blue"},
			{"unknown tag", "/dicomweb/studies?00991234=x"},
			{"bad uid", "/dicomweb/studies?StudyInstanceUID=1.2.abc"},
			{"bad limit", "/dicomweb/studies?limit=-1"},
			{"bad date", "/dicomweb/studies?StudyDate=yesterday"},
			{"bad time (store.ErrInvalidQuery)", "/dicomweb/studies?StudyTime=noon"},
			{"bad series number", "/dicomweb/series?SeriesNumber=two"},
			{"bad includefield", "/dicomweb/studies?includefield=NoSuchThing"},
			{"not a match key", "/dicomweb/studies?Rows=512"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rec := do(t, h, "GET", tc.target, nil)
				if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "error") {
					t.Errorf("%s: status %d, want 400 with a message: %s", tc.target, rec.Code, rec.Body)
				}
			})
		}
		if rec := do(t, h, "GET", "/dicomweb/studies", nil, "Accept", "application/dicom+xml"); rec.Code != http.StatusNotAcceptable {
			t.Errorf("QIDO Accept xml: status %d, want 406", rec.Code)
		}
	})

	t.Run("WADO instances", func(t *testing.T) {
		for p, f := range paths {
			want, _ := os.ReadFile(f)
			rec := do(t, h, "GET", p, nil, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", p, rec.Code, rec.Body)
			}
			types, bodies, locs := readMultipart(t, rec, dicomio.MediaTypeDICOM)
			if len(bodies) != 1 || !bytes.Equal(bodies[0], want) {
				t.Fatalf("GET %s: %d parts, first not byte-identical to %s", p, len(bodies), f)
			}
			if types[0] != dicomio.MediaTypeDICOM || !strings.HasSuffix(locs[0], p) {
				t.Errorf("part type %q location %q", types[0], locs[0])
			}
		}
		// Whole study: 28 parts, each identical to its file.
		rec := do(t, h, "GET", "/dicomweb/studies/"+study, nil)
		_, bodies, locs := readMultipart(t, rec, dicomio.MediaTypeDICOM)
		if len(bodies) != 28 {
			t.Fatalf("study retrieve: %d parts, want 28", len(bodies))
		}
		for i, l := range locs {
			want, _ := os.ReadFile(paths[localPath(t, l)])
			if !bytes.Equal(bodies[i], want) {
				t.Errorf("study part %d (%s) differs from its file", i, l)
			}
		}
		// Series level and a bare application/dicom single instance.
		var p, f string
		for p, f = range paths {
			break
		}
		seriesPath := p[:strings.Index(p, "/instances/")]
		if _, bodies, _ := readMultipart(t, do(t, h, "GET", seriesPath, nil, "Accept", "multipart/related; type=application/dicom"), dicomio.MediaTypeDICOM); len(bodies) != 28 {
			t.Errorf("series retrieve: %d parts", len(bodies))
		}
		want, _ := os.ReadFile(f)
		rec = do(t, h, "GET", p, nil, "Accept", "application/dicom")
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want) {
			t.Errorf("Accept application/dicom: %d, identical %v", rec.Code, bytes.Equal(rec.Body.Bytes(), want))
		}

		for _, tc := range []struct {
			name, target, accept string
			want                 int
		}{
			{"other transfer syntax", p, `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50`, 406},
			{"stored transfer syntax", p, `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`, 200},
			{"octet-stream instance", p, `multipart/related; type="application/octet-stream"`, 406},
			{"bare octet-stream", p, `application/octet-stream`, 406},
			{"q-values pick dicom", p, `multipart/related; type="application/octet-stream", multipart/related; type="application/dicom"; q=0.5`, 200},
			{"q=0 refuses", p, `multipart/related; type="application/dicom"; q=0`, 406},
			{"wildcard", "/dicomweb/studies/" + study, `*/*`, 200},
			{"bare dicom at study level", "/dicomweb/studies/" + study, `application/dicom`, 406},
			{"metadata xml", p + "/metadata", `multipart/related; type="application/dicom+xml"`, 406},
			{"frames jpeg", p + "/frames/1", `multipart/related; type="image/jpeg"`, 406},
			{"frames other syntax", p + "/frames/1", `multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.5`, 406},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rec := do(t, h, "GET", tc.target, nil, "Accept", tc.accept)
				if rec.Code != tc.want {
					t.Errorf("GET %s Accept %s: %d, want %d: %.200s", tc.target, tc.accept, rec.Code, tc.want, rec.Body)
				}
			})
		}
	})

	t.Run("metadata and frames", func(t *testing.T) {
		var p, f string
		for p, f = range paths {
			break
		}
		file, _ := os.ReadFile(f)
		pixels := nativePixelData(t, file, 512*512*2)

		rec := do(t, h, "GET", p+"/metadata", nil, "Accept", "application/dicom+json")
		var md []jsonDS
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &md) != nil || len(md) != 1 {
			t.Fatalf("metadata: %d %.300s", rec.Code, rec.Body)
		}
		bulk := md[0]["7FE00010"].BulkDataURI
		if bulk == "" {
			t.Fatalf("metadata has no BulkDataURI for 7FE00010: %v", md[0]["7FE00010"])
		}
		if md[0].str("00080018") == "" || md[0]["00280010"].VR != "US" {
			t.Errorf("metadata lacks SOPInstanceUID or Rows: %v", md[0])
		}
		_, bodies, _ := readMultipart(t, do(t, h, "GET", localPath(t, bulk), nil), dicomio.MediaTypeOctetStream)
		if len(bodies) != 1 || !bytes.Equal(bodies[0], pixels) {
			t.Errorf("bulk data of Pixel Data differs from the file's pixel bytes")
		}

		for _, level := range []string{"/dicomweb/studies/" + study, p[:strings.Index(p, "/instances/")]} {
			var all []jsonDS
			rec := do(t, h, "GET", level+"/metadata", nil)
			if err := json.Unmarshal(rec.Body.Bytes(), &all); err != nil || len(all) != 28 {
				t.Errorf("%s/metadata: %d objects (err %v), want 28", level, len(all), err)
			}
		}

		_, bodies, _ = readMultipart(t, do(t, h, "GET", p+"/frames/1", nil), dicomio.MediaTypeOctetStream)
		if len(bodies) != 1 || !bytes.Equal(bodies[0], pixels) {
			t.Errorf("frame 1 differs from the file's pixel bytes (%d parts)", len(bodies))
		}
		rec = do(t, h, "GET", p+"/frames/1", nil, "Accept", "application/octet-stream")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/octet-stream" || !bytes.Equal(rec.Body.Bytes(), pixels) {
			t.Errorf("bare octet-stream frame: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		for _, tc := range []struct {
			target string
			want   int
		}{
			{p + "/frames/2", 404},
			{p + "/frames/0", 400},
			{p + "/frames/1,x", 400},
			{p + "/bulkdata/00100010", 404},
			{p + "/bulkdata/zz", 400},
		} {
			if rec := do(t, h, "GET", tc.target, nil); rec.Code != tc.want {
				t.Errorf("GET %s: %d, want %d: %s", tc.target, rec.Code, tc.want, rec.Body)
			}
		}
	})

	t.Run("re-send", func(t *testing.T) {
		rec, ds := stow(t, h, "/dicomweb/studies/"+study, []part{filePart(t, files[0])})
		if rec.Code != http.StatusOK || len(ds.items("00081199")) != 1 {
			t.Errorf("identical re-send: %d %s", rec.Code, rec.Body)
		}
		changed := filePart(t, files[0])
		changed.body[len(changed.body)-1] ^= 0xFF
		rec, ds = stow(t, h, "/dicomweb/studies", []part{changed})
		refs := ds.items("00081199")
		if rec.Code != http.StatusAccepted || len(refs) != 1 || refs[0].num("00081196") != int(dicomio.WarnCoercion) {
			t.Errorf("different bytes under the same UID: %d %s, want 202 with WarningReason 0xB000", rec.Code, rec.Body)
		}
		// Still one copy, still the first version served.
		got := decodeList(t, do(t, h, "GET", "/dicomweb/studies?StudyInstanceUID="+study, nil), 200)
		if got[0].num("00201208") != 28 {
			t.Errorf("after re-sends: %d instances, want 28", got[0].num("00201208"))
		}
		p := localPath(t, refs[0].str("00081190"))
		want, _ := os.ReadFile(files[0])
		_, bodies, _ := readMultipart(t, do(t, h, "GET", p, nil), dicomio.MediaTypeDICOM)
		if len(bodies) != 1 || !bytes.Equal(bodies[0], want) {
			t.Error("after a conflicting re-send the first version is no longer served")
		}
		// STOW to another study: refused per instance.
		rec, ds = stow(t, h, "/dicomweb/studies/1.2.3.4", []part{filePart(t, files[1])})
		if rec.Code != http.StatusConflict || len(ds.items("00081198")) != 1 {
			t.Errorf("instance of another study: %d %s, want 409", rec.Code, rec.Body)
		}
	})

	t.Run("server cap on results", func(t *testing.T) {
		capped := New(archive, Config{MaxQueryResults: 5, Logger: quietLogger()})
		rec := do(t, capped, "GET", "/dicomweb/instances?StudyInstanceUID="+study, nil)
		if got := decodeList(t, rec, 200); len(got) != 5 || !strings.HasPrefix(rec.Header().Get("Warning"), "299 ") {
			t.Errorf("capped QIDO: %d results, Warning %q", len(got), rec.Header().Get("Warning"))
		}
		rec = do(t, capped, "GET", "/dicomweb/instances?StudyInstanceUID="+study+"&limit=3", nil)
		if got := decodeList(t, rec, 200); len(got) != 3 || rec.Header().Get("Warning") != "" {
			t.Errorf("client limit under the cap: %d results, Warning %q", len(got), rec.Header().Get("Warning"))
		}
	})

	t.Run("forwarded https", func(t *testing.T) {
		got := decodeList(t, do(t, h, "GET", "/dicomweb/studies?StudyInstanceUID="+study, nil, "X-Forwarded-Proto", "https"), 200)
		if u := got[0].str("00081190"); !strings.HasPrefix(u, "https://example.com/dicomweb/studies/") {
			t.Errorf("RetrieveURL behind TLS proxy: %q", u)
		}
	})
}

func decodeList(t *testing.T, rec interface {
	Result() *http.Response
}, want int) []jsonDS {
	t.Helper()
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("status %d, want %d: %s", res.StatusCode, want, body)
	}
	var out []jsonDS
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("not a JSON array: %v: %.300s", err, body)
	}
	return out
}

// nativePixelData finds n bytes of OW pixel data at the end of file,
// after its element header (7FE0,0010) OW, explicit VR little endian.
func nativePixelData(t *testing.T, file []byte, n int) []byte {
	t.Helper()
	off := len(file) - n
	hdr := file[off-12 : off]
	if !bytes.Equal(hdr[:6], []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W'}) || binary.LittleEndian.Uint32(hdr[8:]) != uint32(n) {
		t.Fatalf("pixel data is not the last element: % x", hdr)
	}
	return file[off:]
}

// testCompressedFrames stores one ct-head-5mm slice in each compressed
// re-encoding (each copy in its own archive: they share SOP Instance
// UIDs) and retrieves frame 1 as uncompressed octets: exactly the native
// slice's pixel bytes, or 406 where this build has no decoder for the
// syntax.
func testCompressedFrames(t *testing.T, b backend) {
	native, err := os.ReadFile(filepath.Join(fixtureDir(t, "ct-head-5mm"), "I100"))
	if err != nil {
		t.Fatal(err)
	}
	want := nativePixelData(t, native, 512*512*2)
	for _, enc := range []struct{ dir, syntax string }{
		{"ct-head-5mm.rle", "1.2.840.10008.1.2.5"},
		{"ct-head-5mm.jpll", "1.2.840.10008.1.2.4.70"},
		{"ct-head-5mm.jlsl", "1.2.840.10008.1.2.4.80"},
		{"ct-head-5mm.j2kr", "1.2.840.10008.1.2.4.90"},
	} {
		h := New(b.open(t), Config{MaxRequestBytes: 1 << 30, MaxInstanceBytes: 64 << 20, Logger: quietLogger()})
		rec, ds := stow(t, h, "/dicomweb/studies", []part{filePart(t, filepath.Join(fixtureDir(t, enc.dir), "I100.dcm"))})
		refs := ds.items("00081199")
		if rec.Code != http.StatusOK || len(refs) != 1 {
			t.Fatalf("%s: STOW %d %s", enc.dir, rec.Code, rec.Body)
		}
		frame := localPath(t, refs[0].str("00081190")) + "/frames/1"
		rec = do(t, h, "GET", frame, nil, "Accept", "application/octet-stream")
		if _, ok := codec.Lookup(enc.syntax); !ok {
			if rec.Code != http.StatusNotAcceptable || !strings.Contains(rec.Body.String(), "cannot be decoded") {
				t.Errorf("%s without a decoder: %d %s, want 406 naming the syntax", enc.dir, rec.Code, rec.Body)
			}
			continue
		}
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
			t.Errorf("%s: frame 1: %d, %d bytes; want 200 and the native slice's %d pixel bytes", enc.dir, rec.Code, rec.Body.Len(), len(want))
		}
	}
}

// testMixedFixtures STOWs every file of robustness, transfer-syntaxes,
// enhanced and wg04 in one request: each is stored or refused with a
// reason, MR_truncated.dcm refused.
func testMixedFixtures(t *testing.T, b backend) {
	var parts []part
	for _, sub := range []string{"robustness", "transfer-syntaxes", "enhanced", "wg04"} {
		dir := fixtureDir(t, sub)
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				parts = append(parts, filePart(t, path))
			}
			return err
		})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].name < parts[j].name })
	h := New(b.open(t), Config{MaxRequestBytes: 1 << 30, MaxInstanceBytes: 64 << 20, Logger: quietLogger()})
	start := time.Now()
	rec, ds := stow(t, h, "/dicomweb/studies", parts)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("mixed STOW: status %d, want 202: %.500s", rec.Code, rec.Body)
	}
	refs, failed := ds.items("00081199"), ds.items("00081198")
	if len(refs)+len(failed) != len(parts) {
		t.Fatalf("mixed STOW: %d referenced + %d failed != %d parts", len(refs), len(failed), len(parts))
	}
	failedPart := map[int]string{}
	for _, f := range failed {
		text := f.str(tagFailureText)
		var n int
		if _, err := fmt.Sscanf(text, "part %d:", &n); err != nil || f.num("00081197") <= 0 {
			t.Errorf("failure item without part number or reason: %v", f)
		}
		failedPart[n] = text
	}
	for i, p := range parts {
		if strings.HasSuffix(p.name, "MR_truncated.dcm") {
			if _, ok := failedPart[i+1]; !ok {
				t.Errorf("MR_truncated.dcm (part %d) was not refused", i+1)
			}
		}
		if r, ok := failedPart[i+1]; ok && testing.Verbose() {
			t.Logf("refused %s: %s", strings.TrimPrefix(p.name, testenv.SharedDICOM(t)+"/"), r)
		}
	}
	t.Logf("mixed STOW: %d parts, %d stored, %d refused in %v", len(parts), len(refs), len(failed), time.Since(start))

	// Every stored instance can be retrieved (byte-identical unless it
	// was a conflicting re-send), described, and its first frame served
	// or refused with a reason, never a server error.
	ri := 0
	for i, p := range parts {
		if _, ok := failedPart[i+1]; ok {
			continue
		}
		ref := refs[ri]
		ri++
		path := localPath(t, ref.str("00081190"))
		name := strings.TrimPrefix(p.name, testenv.SharedDICOM(t)+"/")
		rec := do(t, h, "GET", path, nil)
		_, bodies, _ := readMultipart(t, rec, dicomio.MediaTypeDICOM)
		if _, warned := ref["00081196"]; !warned && (len(bodies) != 1 || !bytes.Equal(bodies[0], p.body)) {
			t.Errorf("%s: retrieved bytes differ from the file", name)
		}
		rec = do(t, h, "GET", path+"/metadata", nil)
		var md []jsonDS
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &md) != nil || len(md) != 1 {
			t.Errorf("%s: metadata %d %.200s", name, rec.Code, rec.Body)
		}
		rec = do(t, h, "GET", path+"/frames/1", nil)
		switch rec.Code {
		case 200, 406, 404:
		default:
			t.Errorf("%s: frames/1: %d %s", name, rec.Code, rec.Body)
		}
	}
}

func testHostile(t *testing.T, b backend) {
	h := New(b.open(t), Config{MaxRequestBytes: 1 << 30, MaxInstanceBytes: 64 << 20, Logger: quietLogger()})
	long := "1." + strings.Repeat("2", 63) // 65 characters
	for _, tc := range []struct {
		name, method, target string
		want                 int
	}{
		{"encoded dots", "GET", "/dicomweb/studies/..%2F..", 400},
		{"encoded slash", "GET", "/dicomweb/studies/1.2.3%2F..%2F4/series", 400},
		{"dot segments", "GET", "/dicomweb/studies/1.2.3/../4", 400},
		{"dot segment metadata", "GET", "/dicomweb/studies/1.2.3/series/../../4/metadata", 400},
		{"overlong study", "GET", "/dicomweb/studies/" + long, 400},
		{"overlong series", "GET", "/dicomweb/studies/1.2.3/series/" + long + "/instances", 400},
		{"letters sop", "GET", "/dicomweb/studies/1.2/series/1.3/instances/abc/frames/1", 400},
		{"stow hostile study", "POST", "/dicomweb/studies/..%2Fetc", 400},
		{"stow overlong study", "POST", "/dicomweb/studies/" + long, 400},
		{"unknown study", "GET", "/dicomweb/studies/1.2.3.4.5", 404},
		{"unknown instance metadata", "GET", "/dicomweb/studies/1.2/series/1.3/instances/1.4/metadata", 404},
		{"unknown route", "GET", "/dicomweb/nothing", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, tc.method, tc.target, strings.NewReader(""), "Content-Type", `multipart/related; type="application/dicom"; boundary=x`)
			if rec.Code != tc.want {
				t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.target, rec.Code, tc.want, rec.Body)
			}
		})
	}

	small := filePart(t, filepath.Join(fixtureDir(t, "robustness"), "CT_small.dcm"))
	body, ct := multipartBody(t, []part{small})
	for _, tc := range []struct {
		name, ct string
		body     []byte
		want     int
	}{
		{"missing boundary", `multipart/related; type="application/dicom"`, body, 400},
		{"bare dicom", "application/dicom", small.body, 415},
		{"json", "application/json", []byte("{}"), 415},
		{"no content type", "", body, 415},
		{"dicom+json root", strings.Replace(ct, "application/dicom", "application/dicom+json", 1), body, 415},
		{"garbage body", ct, []byte("this is not multipart"), 400},
		{"empty multipart", ct, []byte("--" + strings.Split(ct, "boundary=")[1] + "--\r\n"), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, "POST", "/dicomweb/studies", bytes.NewReader(tc.body), "Content-Type", tc.ct)
			if rec.Code != tc.want {
				t.Errorf("%s: %d, want %d: %s", tc.name, rec.Code, tc.want, rec.Body)
			}
		})
	}

	t.Run("wrong part type", func(t *testing.T) {
		rec, ds := stow(t, h, "/dicomweb/studies", []part{{name: "text", ct: "text/plain", body: []byte("hello")}, small})
		failed := ds.items("00081198")
		if rec.Code != http.StatusAccepted || len(ds.items("00081199")) != 1 || len(failed) != 1 ||
			!strings.Contains(failed[0].str(tagFailureText), "text/plain") {
			t.Errorf("text/plain part: %d %s, want 202 with one failure naming the type", rec.Code, rec.Body)
		}
	})

	t.Run("body broken after a stored part", func(t *testing.T) {
		body, ct := multipartBody(t, []part{small, small})
		cut := body[:len(body)-len(small.body)/2]
		rec := do(t, h, "POST", "/dicomweb/studies", bytes.NewReader(cut), "Content-Type", ct)
		ds := decodeDS(t, rec)
		if rec.Code != http.StatusAccepted || len(ds.items("00081199")) != 1 || len(ds.items("00081198")) != 1 {
			t.Errorf("truncated body: %d %s, want 202 listing the stored instance and the break", rec.Code, rec.Body)
		}
	})

	t.Run("deflate bomb", func(t *testing.T) {
		bomb := bombOnce() // 128 MiB inflated
		start := time.Now()
		rec, ds := stow(t, h, "/dicomweb/studies", []part{{name: "bomb", ct: dicomio.MediaTypeDICOM, body: bomb}})
		if failed := ds.items("00081198"); rec.Code != http.StatusConflict || len(failed) != 1 || failed[0].num("00081197") != int(dicomio.ReasonOutOfResources) {
			t.Errorf("deflate bomb: %d %s, want 409 with the instance refused", rec.Code, rec.Body)
		}
		t.Logf("deflate bomb of %d bytes refused in %v", len(bomb), time.Since(start))
		if d := time.Since(start); d > 60*time.Second {
			t.Errorf("deflate bomb took %v", d)
		}
	})
}

// testLimits: a part over MaxInstanceBytes fails alone (0xA700); an
// endless part runs into MaxRequestBytes: 413, or 202 when an instance
// before it was stored.
func testLimits(t *testing.T, b backend) {
	dir := fixtureDir(t, "robustness")
	small := filePart(t, filepath.Join(dir, "CT_small.dcm")) // 39 KB
	big := filePart(t, filepath.Join(dir, "emri_small.dcm")) // 84 KB
	h := New(b.open(t), Config{MaxRequestBytes: 1 << 20, MaxInstanceBytes: 64 << 10, Logger: quietLogger()})

	t.Run("instance too large", func(t *testing.T) {
		rec, ds := stow(t, h, "/dicomweb/studies", []part{big, small})
		failed := ds.items("00081198")
		if rec.Code != http.StatusAccepted || len(ds.items("00081199")) != 1 || len(failed) != 1 ||
			failed[0].num("00081197") != int(dicomio.ReasonOutOfResources) {
			t.Errorf("oversized part: %d %s, want 202 with 0xA700 for it", rec.Code, rec.Body)
		}
	})
	t.Run("declared body too large", func(t *testing.T) {
		var parts []part
		for i := 0; i < 30; i++ {
			parts = append(parts, small)
		}
		rec, _ := stow(t, h, "/dicomweb/studies", parts)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "limit") {
			t.Errorf("1.2 MB body: %d %s, want 413 with a message", rec.Code, rec.Body)
		}
	})
	endless := func(prefix []part) (io.Reader, string) {
		body, ct := multipartBody(t, prefix)
		boundary := strings.Split(ct, "boundary=")[1]
		head := body[:len(body)-len(boundary)-8] // drop "\r\n--boundary--\r\n"
		head = append(head, []byte("\r\n--"+boundary+"\r\nContent-Type: application/dicom\r\n\r\n")...)
		if len(prefix) == 0 {
			head = []byte("--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n")
		}
		return io.MultiReader(bytes.NewReader(head), zeros{}), ct
	}
	t.Run("endless part", func(t *testing.T) {
		r, ct := endless(nil)
		rec := do(t, h, "POST", "/dicomweb/studies", r, "Content-Type", ct)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("endless part: %d %s, want 413", rec.Code, rec.Body)
		}
	})
	t.Run("endless part after a stored one", func(t *testing.T) {
		r, ct := endless([]part{small})
		rec := do(t, h, "POST", "/dicomweb/studies", r, "Content-Type", ct)
		ds := decodeDS(t, rec)
		failed := ds.items("00081198")
		if rec.Code != http.StatusAccepted || len(ds.items("00081199")) != 1 || len(failed) == 0 ||
			failed[len(failed)-1].num("00081197") != int(dicomio.ReasonOutOfResources) {
			t.Errorf("endless part after a stored one: %d %s, want 202 listing it and 0xA700", rec.Code, rec.Body)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bombOnce builds the deflate bomb once for all backends (compressing
// 128 MiB takes a while under -race).
var bombOnce = sync.OnceValue(func() []byte { return deflateBomb(1 << 27) })

// deflateBomb builds a Deflated Explicit VR Little Endian instance whose
// data set inflates to more than n bytes of pixel data.
func deflateBomb(n uint32) []byte {
	var buf bytes.Buffer
	buf.Write(make([]byte, 128))
	buf.WriteString("DICM")
	el := func(w io.Writer, group, elem uint16, vr string, value []byte) {
		binary.Write(w, binary.LittleEndian, [2]uint16{group, elem})
		io.WriteString(w, vr)
		switch vr {
		case "OB", "OW", "UN", "SQ", "UT":
			w.Write([]byte{0, 0})
			binary.Write(w, binary.LittleEndian, uint32(len(value)))
		default:
			binary.Write(w, binary.LittleEndian, uint16(len(value)))
		}
		w.Write(value)
	}
	uid := func(s string) []byte {
		if len(s)%2 == 1 {
			s += "\x00"
		}
		return []byte(s)
	}
	var meta bytes.Buffer
	el(&meta, 0x0002, 0x0001, "OB", []byte{0, 1})
	el(&meta, 0x0002, 0x0002, "UI", uid("1.2.840.10008.5.1.4.1.1.7"))
	el(&meta, 0x0002, 0x0003, "UI", uid("1.2.3.4.5.6.7.8.9"))
	el(&meta, 0x0002, 0x0010, "UI", uid("1.2.840.10008.1.2.1.99"))
	gl := make([]byte, 4)
	binary.LittleEndian.PutUint32(gl, uint32(meta.Len()))
	el(&buf, 0x0002, 0x0000, "UL", gl)
	buf.Write(meta.Bytes())

	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	el(fw, 0x0008, 0x0016, "UI", uid("1.2.840.10008.5.1.4.1.1.7"))
	el(fw, 0x0008, 0x0018, "UI", uid("1.2.3.4.5.6.7.8.9"))
	el(fw, 0x0020, 0x000D, "UI", uid("1.2.3.4.5.6.7.8.10"))
	el(fw, 0x0020, 0x000E, "UI", uid("1.2.3.4.5.6.7.8.11"))
	binary.Write(fw, binary.LittleEndian, [2]uint16{0x7FE0, 0x0010})
	io.WriteString(fw, "OB\x00\x00")
	binary.Write(fw, binary.LittleEndian, n)
	zero := make([]byte, 1<<20)
	for left := int64(n); left > 0; left -= int64(len(zero)) {
		fw.Write(zero[:min(left, int64(len(zero)))])
	}
	fw.Close()
	return buf.Bytes()
}

func TestCORSAndHealth(t *testing.T) {
	h := New(openSQLite(t), Config{CORSOrigins: []string{"https://viewer.example"}, Logger: quietLogger()})
	rec := do(t, h, "OPTIONS", "/dicomweb/studies", nil, "Origin", "https://viewer.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://viewer.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "DELETE") {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}
	if rec := do(t, h, "OPTIONS", "/dicomweb/studies", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"); rec.Code != http.StatusForbidden {
		t.Errorf("preflight from another origin: %d", rec.Code)
	}
	rec = do(t, h, "GET", "/dicomweb/studies", nil, "Origin", "https://viewer.example")
	if rec.Code != 200 || !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "Content-Location") {
		t.Errorf("CORS GET: %d %v", rec.Code, rec.Header())
	}
	if got := strings.TrimSpace(rec.Body.String()); got != "[]" {
		t.Errorf("empty archive QIDO: %q, want []", got)
	}
	star := New(openSQLite(t), Config{CORSOrigins: []string{"*"}, Logger: quietLogger()})
	if rec := do(t, star, "GET", "/healthz", nil, "Origin", "https://any.example"); rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Code != 200 {
		t.Errorf("CORS *: %d %v", rec.Code, rec.Header())
	}
	if rec := do(t, h, "GET", "/readyz", nil); rec.Code != 200 {
		t.Errorf("readyz: %d", rec.Code)
	}
	db, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	down := New(db, Config{Logger: quietLogger()})
	db.Close()
	if rec := do(t, down, "GET", "/readyz", nil); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("readyz with the database closed: %d %v", rec.Code, rec.Header())
	}
	if rec := do(t, down, "GET", "/healthz", nil); rec.Code != 200 {
		t.Errorf("healthz with the database closed: %d", rec.Code)
	}
}

func TestNegotiate(t *testing.T) {
	stored := []string{"1.2.840.10008.1.2.1"}
	for _, tc := range []struct {
		accept string
		single bool
		want   representation
	}{
		{"", false, multipartRep},
		{"*/*", false, multipartRep},
		{"*", false, multipartRep},
		{`multipart/related; type="application/dicom"`, false, multipartRep},
		{`multipart/related; type=application/dicom; transfer-syntax=*`, false, multipartRep},
		{`multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`, false, multipartRep},
		{`multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90`, false, notAcceptable},
		{`multipart/related; type="application/octet-stream"`, true, notAcceptable},
		{`application/dicom`, true, singleRep},
		{`application/dicom`, false, notAcceptable},
		{`text/html, multipart/related; type="application/dicom"; q=0.1`, false, multipartRep},
		{`multipart/related; type="application/dicom"; q=0`, false, notAcceptable},
		{`garbage;;;`, false, notAcceptable},
	} {
		if got := negotiateInstances(tc.accept, stored, tc.single); got != tc.want {
			t.Errorf("negotiateInstances(%q, single=%v) = %v, want %v", tc.accept, tc.single, got, tc.want)
		}
	}
	for _, tc := range []struct {
		accept string
		single bool
		want   representation
	}{
		{"", true, multipartRep},
		{`multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1`, false, multipartRep},
		{`multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.5`, false, notAcceptable},
		{`application/octet-stream`, true, singleRep},
		{`application/octet-stream`, false, notAcceptable},
		{`multipart/related; type="image/jpeg"`, true, notAcceptable},
	} {
		if got := negotiateOctets(tc.accept, tc.single, true); got != tc.want {
			t.Errorf("negotiateOctets(%q, single=%v) = %v, want %v", tc.accept, tc.single, got, tc.want)
		}
	}
}
