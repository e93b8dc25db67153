package api

import (
	"sort"
	"strconv"
	"strings"

	"github.com/radtriage/radtriage/dicomio"
)

// explicitVRLittleEndian is the transfer syntax of uncompressed frames and
// bulk data in WADO-RS responses (PS3.18 §8.7.3.5.2).
const explicitVRLittleEndian = "1.2.840.10008.1.2.1"

// mediaRange is one entry of an Accept header.
type mediaRange struct {
	typ    string // lower case, "*/*" for any
	params map[string]string
	q      float64
}

// parseAccept parses an Accept header into its ranges with q > 0, best
// first (stable among equal q). A missing header accepts anything.
// Entries that do not parse are ignored.
func parseAccept(h string) []mediaRange {
	if strings.TrimSpace(h) == "" {
		return []mediaRange{{typ: "*/*", q: 1}}
	}
	var out []mediaRange
	for _, s := range dicomio.SplitAccept(h) {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "*" { // seen from some clients; means */*
			s = "*/*"
		}
		mt, params, err := dicomio.ParseMediaType(s)
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
			delete(params, "q")
		}
		if q == 0 {
			continue
		}
		out = append(out, mediaRange{typ: mt, params: params, q: q})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].q > out[j].q })
	return out
}

// param returns a media range parameter, lower case, unquoted.
func (m mediaRange) param(name string) string {
	return strings.ToLower(strings.TrimSpace(m.params[name]))
}

// negotiateJSON picks the media type of a QIDO-RS or metadata answer:
// application/dicom+json, or application/json when that is what the
// client asks for. ok is false when the client accepts neither.
func negotiateJSON(accept string) (mediaType string, ok bool) {
	for _, m := range parseAccept(accept) {
		switch m.typ {
		case "application/dicom+json", "*/*", "application/*":
			return "application/dicom+json", true
		case "application/json":
			return "application/json", true
		}
	}
	return "", false
}

// transferSyntaxOK reports whether a requested transfer-syntax parameter
// can be served without transcoding: absent, "*", or the stored syntax of
// every instance. An absent parameter is served as stored (as most
// archives do) rather than refused: radtriage never transcodes.
func transferSyntaxOK(want string, stored []string) bool {
	if want == "" || want == "*" {
		return true
	}
	for _, ts := range stored {
		if ts != want {
			return false
		}
	}
	return true
}

// Representations a retrieve can answer with.
type representation int

const (
	notAcceptable representation = iota
	multipartRep                 // multipart/related; type=<root>
	singleRep                    // one bare part (instance or one frame)
)

// negotiateInstances decides how to answer a WADO-RS retrieve of
// instances whose stored transfer syntaxes are stored: multipart/related;
// type="application/dicom", or (single, instance level only) a bare
// application/dicom body.
func negotiateInstances(accept string, stored []string, single bool) representation {
	for _, m := range parseAccept(accept) {
		switch m.typ {
		case "*/*", "multipart/*":
			return multipartRep
		case "multipart/related":
			typ := m.param("type")
			if (typ == "" || typ == "application/dicom") && transferSyntaxOK(m.param("transfer-syntax"), stored) {
				return multipartRep
			}
		case "application/dicom":
			if single && transferSyntaxOK(m.param("transfer-syntax"), stored) {
				return singleRep
			}
		}
	}
	return notAcceptable
}

// negotiateOctets decides how to answer a frames or bulk data retrieve of
// uncompressed bytes: multipart/related; type="application/octet-stream",
// or a bare application/octet-stream body when single is true. checkTS
// requires a requested transfer-syntax to be Explicit VR Little Endian.
func negotiateOctets(accept string, single, checkTS bool) representation {
	tsOK := func(m mediaRange) bool {
		if !checkTS {
			return true
		}
		return transferSyntaxOK(m.param("transfer-syntax"), []string{explicitVRLittleEndian})
	}
	for _, m := range parseAccept(accept) {
		switch m.typ {
		case "*/*", "multipart/*":
			return multipartRep
		case "multipart/related":
			typ := m.param("type")
			if (typ == "" || typ == "application/octet-stream") && tsOK(m) {
				return multipartRep
			}
		case "application/octet-stream", "application/*":
			if single && tsOK(m) {
				return singleRep
			}
		}
	}
	return notAcceptable
}
