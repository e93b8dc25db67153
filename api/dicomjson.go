package api

import "strings"

// dataset is one DICOM JSON object (PS3.18 Annex F): tag "GGGGEEEE" →
// attribute. encoding/json sorts map keys, so tags come out in order.
type dataset map[string]attr

// attr is one DICOM JSON attribute; Value is omitted when empty.
type attr struct {
	VR    string `json:"vr"`
	Value []any  `json:"Value,omitempty"`
}

// str sets a string attribute (an empty string gives an empty attribute).
func (d dataset) str(tag, vr, v string) {
	if v == "" {
		d[tag] = attr{VR: vr}
		return
	}
	d[tag] = attr{VR: vr, Value: []any{v}}
}

// strs sets a multi-valued string attribute.
func (d dataset) strs(tag, vr string, vs []string) {
	a := attr{VR: vr}
	for _, v := range vs {
		if v != "" {
			a.Value = append(a.Value, v)
		}
	}
	d[tag] = a
}

// pn sets a person name (PS3.18 F.2.2: {"Alphabetic": ...}); the stored
// string may carry "=" separated ideographic and phonetic groups.
func (d dataset) pn(tag, v string) {
	if v == "" {
		d[tag] = attr{VR: "PN"}
		return
	}
	groups := strings.SplitN(v, "=", 3)
	m := map[string]string{}
	for i, key := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
		if i < len(groups) && groups[i] != "" {
			m[key] = groups[i]
		}
	}
	d[tag] = attr{VR: "PN", Value: []any{m}}
}

// num sets a numeric attribute (IS, US, UL: JSON numbers); zero with
// present=false gives an empty attribute.
func (d dataset) num(tag, vr string, v int, present bool) {
	if !present {
		d[tag] = attr{VR: vr}
		return
	}
	d[tag] = attr{VR: vr, Value: []any{v}}
}

// seq sets a sequence attribute.
func (d dataset) seq(tag string, items []dataset) {
	a := attr{VR: "SQ"}
	for _, it := range items {
		a.Value = append(a.Value, it)
	}
	d[tag] = a
}

// keyword ↔ tag dictionary for the attributes QIDO-RS matches or returns.
type attrDef struct {
	tag, keyword, vr string
}

var attrDefs = []attrDef{
	{"00080005", "SpecificCharacterSet", "CS"},
	{"00080016", "SOPClassUID", "UI"},
	{"00080018", "SOPInstanceUID", "UI"},
	{"00080020", "StudyDate", "DA"},
	{"00080021", "SeriesDate", "DA"},
	{"00080030", "StudyTime", "TM"},
	{"00080031", "SeriesTime", "TM"},
	{"00080050", "AccessionNumber", "SH"},
	{"00080056", "InstanceAvailability", "CS"},
	{"00080060", "Modality", "CS"},
	{"00080061", "ModalitiesInStudy", "CS"},
	{"00080090", "ReferringPhysicianName", "PN"},
	{"00081030", "StudyDescription", "LO"},
	{"0008103E", "SeriesDescription", "LO"},
	{"00081190", "RetrieveURL", "UR"},
	{"00083002", "AvailableTransferSyntaxUID", "UI"},
	{"00100010", "PatientName", "PN"},
	{"00100020", "PatientID", "LO"},
	{"00100030", "PatientBirthDate", "DA"},
	{"00100040", "PatientSex", "CS"},
	{"00180015", "BodyPartExamined", "CS"},
	{"0020000D", "StudyInstanceUID", "UI"},
	{"0020000E", "SeriesInstanceUID", "UI"},
	{"00200010", "StudyID", "SH"},
	{"00200011", "SeriesNumber", "IS"},
	{"00200013", "InstanceNumber", "IS"},
	{"00201206", "NumberOfStudyRelatedSeries", "IS"},
	{"00201208", "NumberOfStudyRelatedInstances", "IS"},
	{"00201209", "NumberOfSeriesRelatedInstances", "IS"},
	{"00280008", "NumberOfFrames", "IS"},
	{"00280010", "Rows", "US"},
	{"00280011", "Columns", "US"},
	{"00280100", "BitsAllocated", "US"},
}

var (
	tagByKeyword = map[string]string{}
	knownTag     = map[string]bool{}
)

func init() {
	for _, a := range attrDefs {
		tagByKeyword[a.keyword] = a.tag
		knownTag[a.tag] = true
	}
}

// resolveTag turns a QIDO-RS attribute key (keyword or 8 hex digits) into
// a tag; ok is false for anything else. Unknown but well-formed tags are
// returned with known=false.
func resolveTag(key string) (tag string, known, ok bool) {
	if t, found := tagByKeyword[key]; found {
		return t, true, true
	}
	if len(key) == 8 && isHex(key) {
		t := strings.ToUpper(key)
		return t, knownTag[t], true
	}
	return "", false, false
}

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}
