package dicomio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

func metadataJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var out bytes.Buffer
	err := WriteMetadataJSON(&out, bytes.NewReader(b), int64(len(b)), func(tag string) string { return "bulk/" + tag })
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out.Bytes())
	}
	return m
}

// pydicomScript prints pydicom's DICOM JSON for each file named on the
// command line, as one JSON object keyed by file name, with the same bulk
// data rules as WriteMetadataJSON.
const pydicomScript = `
import json, sys, pydicom
def bulk(elem):
    return "bulk/%08X" % int(elem.tag)
out = {}
for f in sys.argv[1:]:
    out[f] = pydicom.dcmread(f).to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=bulk)
print(json.dumps(out))
`

// TestMetadataJSONMatchesPydicom compares WriteMetadataJSON with pydicom's
// Dataset.to_json_dict on fixtures, value by value after JSON decoding (so
// 5 and 5.0 are equal).
func TestMetadataJSONMatchesPydicom(t *testing.T) {
	root := testenv.SharedDICOM(t)
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pydicom").Run(); err != nil {
		t.Skipf("skipping: pydicom not available (%v)", err)
	}
	files := []string{
		"ct-head-5mm/I10",
		"robustness/CT_small.dcm",
		"robustness/MR_small_bigendian.dcm",
		"robustness/MR_small_implicit.dcm",
		"robustness/ExplVR_BigEnd.dcm",
		"robustness/emri_small_big_endian.dcm",
		"robustness/explicit_VR-UN.dcm",
		"robustness/JPEG-LL.dcm",
		"robustness/image_dfl.dcm",
		"seg-sr/sr-example/sr.dcm",
		"seg-sr/segmentations/liver.dcm",
		"enhanced/In/Siemens/XA10/6_1.dcm",
	}
	args := []string{"-c", pydicomScript}
	for _, rel := range files {
		args = append(args, filepath.Join(root, rel))
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("pydicom: %v", err)
	}
	var refs map[string]map[string]any
	if err := json.Unmarshal(out, &refs); err != nil {
		t.Fatal(err)
	}
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			ours := metadataJSON(t, testenv.Fixture(t, rel))
			ref := refs[filepath.Join(root, rel)]
			var diffs []string
			compareJSON("", ours, ref, &diffs)
			sort.Strings(diffs)
			if len(diffs) > 0 {
				t.Errorf("%d differences from pydicom:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 30)], "\n"))
			}
		})
	}
}

// compareJSON records the paths where got and want differ. Group lengths
// (gggg0000), which WriteMetadataJSON leaves out, are ignored; an absent
// Value equals pydicom's empty one; numbers compare with a relative
// tolerance of 1e-6 (pydicom widens FL to the float64 of the float32, we
// print the shortest float32 text).
func compareJSON(path string, got, want any, diffs *[]string) {
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if gok && wok {
		for k, wv := range wm {
			if len(k) == 8 && strings.HasSuffix(k, "0000") {
				continue
			}
			gv, ok := gm[k]
			if wa, isArr := wv.([]any); !ok && k == "Value" && isArr && len(wa) == 0 {
				continue
			}
			if !ok {
				*diffs = append(*diffs, fmt.Sprintf("%s/%s: missing (pydicom %v)", path, k, short(wv)))
				continue
			}
			compareJSON(path+"/"+k, gv, wv, diffs)
		}
		for k, gv := range gm {
			if _, ok := wm[k]; !ok {
				*diffs = append(*diffs, fmt.Sprintf("%s/%s: extra %v", path, k, short(gv)))
			}
		}
		return
	}
	ga, gok := got.([]any)
	wa, wok := want.([]any)
	if gok && wok && len(ga) == len(wa) {
		for i := range ga {
			compareJSON(fmt.Sprintf("%s[%d]", path, i), ga[i], wa[i], diffs)
		}
		return
	}
	if gf, ok := got.(float64); ok {
		if wf, ok := want.(float64); ok && math.Abs(gf-wf) <= 1e-6*math.Max(math.Abs(wf), 1e-30) {
			return
		}
	}
	if !reflect.DeepEqual(got, want) {
		*diffs = append(*diffs, fmt.Sprintf("%s: got %v, pydicom %v", path, short(got), short(want)))
	}
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

func TestMetadataJSONValues(t *testing.T) {
	m := metadataJSON(t, testenv.Fixture(t, "ct-head-5mm/I10"))
	for _, tc := range []struct {
		name, tag string
		want      string
	}{
		{"PN as object", "00100010", `{"vr":"PN","Value":[{"Alphabetic":"HEAD"}]}`},
		{"IS as number", "00200013", `{"vr":"IS","Value":[1]}`},
		{"DS as numbers", "00280030", `{"vr":"DS","Value":[0.451171875,0.451171875]}`},
		{"US", "00280010", `{"vr":"US","Value":[512]}`},
		{"pixel data as bulk", "7FE00010", `{"vr":"OW","BulkDataURI":"bulk/7FE00010"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(m[tc.tag])
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			json.Unmarshal(got, &a)
			json.Unmarshal([]byte(tc.want), &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s = %s, want %s", tc.tag, got, tc.want)
			}
		})
	}
	if _, ok := m["00020010"]; ok {
		t.Error("file meta information written")
	}
}
