package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/store"
)

// QIDO-RS (PS3.18 §10.6): GET /studies, /series, /instances,
// /studies/{study}/series, /studies/{study}/instances,
// /studies/{study}/series/{series}/instances.
//
// Query keys are keywords or tags (PatientID or 00100020); limit, offset,
// includefield (comma list, repeatable, "all") and fuzzymatching (accepted,
// ignored: matching is exact or wildcard) are the other parameters. An
// unknown key, an attribute that cannot be matched, or a bad value is 400.
// The answer is a JSON array of the required return attributes of the
// level (PS3.18 Table 10.6.3-3..5), their parents' UIDs, the matched
// attributes and the included ones; 200 with [] when nothing matches.
// More results than cfg.MaxQueryResults are cut with a Warning header.

type qidoLevel int

const (
	studyLevel qidoLevel = iota
	seriesLevel
	instanceLevel
)

// Required return attributes per level (PS3.18 Table 10.6.3-3..5).
var (
	studyReturn = []string{"00080020", "00080030", "00080050", "00080061", "00080090", "00100010",
		"00100020", "00100030", "00100040", "0020000D", "00200010", "00201206", "00201208", "00081190"}
	seriesReturn   = []string{"0020000D", "00080060", "0008103E", "00200011", "0020000E", "00201209", "00081190"}
	instanceReturn = []string{"0020000D", "0020000E", "00080016", "00080018", "00200013", "00280010",
		"00280011", "00280100", "00280008", "00081190"}
)

// qidoRequest is a parsed QIDO-RS query.
type qidoRequest struct {
	q       store.Query
	include map[string]bool // tags to return beyond the required ones
	all     bool
	limit   int
	capped  bool // limit is the server's cap, not the client's
}

var listKeys = map[string]bool{"0020000D": true, "0020000E": true, "00080018": true, "00080016": true,
	"00080060": true, "00080061": true}

func (s *server) parseQIDO(c *gin.Context) (*qidoRequest, error) {
	req := &qidoRequest{include: map[string]bool{}}
	q := &req.q
	values, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "malformed query string: %v", err)
	}
	for key, vals := range values {
		switch strings.ToLower(key) {
		case "limit", "offset":
			if len(vals) != 1 {
				return nil, errorf(http.StatusBadRequest, "%s given %d times", key, len(vals))
			}
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 0 {
				return nil, errorf(http.StatusBadRequest, "%s=%q is not a non-negative integer", key, vals[0])
			}
			if strings.ToLower(key) == "limit" {
				req.limit = n
			} else {
				q.Offset = n
			}
			continue
		case "fuzzymatching":
			for _, v := range vals {
				if v != "true" && v != "false" {
					return nil, errorf(http.StatusBadRequest, "fuzzymatching=%q: want true or false", v)
				}
			}
			continue
		case "includefield":
			for _, v := range vals {
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "all" {
						req.all = true
						continue
					}
					tag, _, ok := resolveTag(f)
					if !ok {
						return nil, errorf(http.StatusBadRequest, "includefield %q is neither a known keyword nor a tag (8 hex digits)", f)
					}
					req.include[tag] = true
				}
			}
			continue
		}
		tag, known, ok := resolveTag(key)
		if !ok || !known {
			return nil, errorf(http.StatusBadRequest, "unknown query attribute %q", key)
		}
		if len(vals) > 1 && !listKeys[tag] {
			return nil, errorf(http.StatusBadRequest, "attribute %s given %d times; it takes one value", key, len(vals))
		}
		var list []string
		for _, v := range vals {
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
		}
		if len(list) == 0 {
			// An empty value is a return key, not a filter (PS3.18 §8.3.4.1).
			req.include[tag] = true
			continue
		}
		v := vals[0]
		switch tag {
		case "0020000D", "0020000E", "00080018", "00080016":
			for _, uid := range list {
				if err := dicomio.ValidateUID(uid); err != nil {
					return nil, errorf(http.StatusBadRequest, "%s: invalid UID %q: %v", key, uid, err)
				}
			}
			switch tag {
			case "0020000D":
				q.StudyInstanceUIDs = list
			case "0020000E":
				q.SeriesInstanceUIDs = list
			case "00080018":
				q.SOPInstanceUIDs = list
			case "00080016":
				q.SOPClassUIDs = list
			}
		case "00080060":
			q.Modality = list
		case "00080061":
			q.ModalitiesInStudy = list
		case "00100020":
			q.PatientID = v
		case "00100010":
			q.PatientName = v
		case "00080020":
			if !validDateRange(v) {
				return nil, errorf(http.StatusBadRequest, "StudyDate %q: want YYYYMMDD or a range A-B, A-, -B", v)
			}
			q.StudyDate = v
		case "00080030":
			q.StudyTime = v
		case "00080050":
			q.AccessionNumber = v
		case "00200010":
			q.StudyID = v
		case "00080090":
			q.ReferringPhysician = v
		case "00200011":
			q.SeriesNumber = v
		case "00200013":
			q.InstanceNumber = v
		default:
			return nil, errorf(http.StatusBadRequest, "attribute %s cannot be used as a query key", key)
		}
		req.include[tag] = true
	}

	// UIDs of the path restrict the query, validated before any lookup.
	for _, p := range []struct{ name, label string }{{"study", "Study"}, {"series", "Series"}} {
		uid := c.Param(p.name)
		if uid == "" {
			continue
		}
		if err := dicomio.ValidateUID(uid); err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid %s Instance UID in path: %v", p.label, err)
		}
		if p.name == "study" {
			q.StudyInstanceUIDs = []string{uid}
		} else {
			q.SeriesInstanceUIDs = []string{uid}
		}
	}

	max := s.cfg.MaxQueryResults
	if req.limit == 0 || req.limit > max {
		req.limit, req.capped = max, true
	}
	q.Limit = req.limit
	if req.capped {
		q.Limit = req.limit + 1 // one more tells whether the cap cut the answer
	}
	return req, nil
}

func validDateRange(v string) bool {
	okDate := func(d string) bool {
		if len(d) != 8 {
			return false
		}
		_, err := strconv.Atoi(d)
		return err == nil
	}
	a, b, isRange := strings.Cut(v, "-")
	if !isRange {
		return okDate(v)
	}
	return (a != "" || b != "") && (a == "" || okDate(a)) && (b == "" || okDate(b))
}

func (s *server) qidoStudies(c *gin.Context)   { s.qido(c, studyLevel) }
func (s *server) qidoSeries(c *gin.Context)    { s.qido(c, seriesLevel) }
func (s *server) qidoInstances(c *gin.Context) { s.qido(c, instanceLevel) }

func (s *server) qido(c *gin.Context, level qidoLevel) {
	mediaType, ok := negotiateJSON(c.GetHeader("Accept"))
	if !ok {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "QIDO-RS answers application/dicom+json or application/json only"))
		return
	}
	req, err := s.parseQIDO(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx := c.Request.Context()
	base := baseURL(c.Request)
	underStudy, underSeries := c.Param("study") != "", c.Param("series") != ""

	var out []dataset
	switch level {
	case studyLevel:
		rows, err := s.archive.FindStudies(ctx, req.q)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		for i := range rows {
			out = append(out, req.project(studyDataset(base, &rows[i]), studyReturn))
		}
	case seriesLevel:
		rows, err := s.archive.FindSeries(ctx, req.q)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		required := seriesReturn
		if !underStudy {
			required = append(append([]string{}, studyReturn...), seriesReturn...)
		}
		for i := range rows {
			ds := seriesDataset(base, &rows[i])
			mergeParent(ds, studyDataset(base, &rows[i].Study))
			out = append(out, req.project(ds, required))
		}
	case instanceLevel:
		rows, err := s.archive.FindInstances(ctx, req.q)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		required := instanceReturn
		if !underSeries {
			required = append(append([]string{}, seriesReturn...), instanceReturn...)
		}
		if !underStudy {
			required = append(append([]string{}, studyReturn...), required...)
		}
		for i := range rows {
			ds := instanceDataset(base, &rows[i])
			mergeParent(ds, seriesDataset(base, &rows[i].Series))
			mergeParent(ds, studyDataset(base, &rows[i].Series.Study))
			out = append(out, req.project(ds, required))
		}
	}
	if req.capped && len(out) > req.limit {
		out = out[:req.limit]
		c.Header("Warning", `299 radtriage: "The number of results exceeded the maximum supported by the server. Additional results can be requested."`)
	}
	if out == nil {
		out = []dataset{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		s.abortWithError(c, err)
		return
	}
	c.Data(http.StatusOK, mediaType, buf.Bytes())
}

// project keeps the required, matched and included attributes of ds.
func (req *qidoRequest) project(ds dataset, required []string) dataset {
	if req.all {
		return ds
	}
	out := dataset{}
	for _, t := range required {
		if a, ok := ds[t]; ok {
			out[t] = a
		}
	}
	for t := range req.include {
		if a, ok := ds[t]; ok {
			out[t] = a
		}
	}
	return out
}

// mergeParent adds parent-level attributes that ds does not hold already
// (the child's RetrieveURL wins).
func mergeParent(ds, parent dataset) {
	for t, a := range parent {
		if _, ok := ds[t]; !ok {
			ds[t] = a
		}
	}
}

func studyURL(base, study string) string { return base + "/studies/" + url.PathEscape(study) }

func studyDataset(base string, st *store.Study) dataset {
	ds := dataset{}
	ds.str("00080020", "DA", st.StudyDate)
	ds.str("00080030", "TM", st.StudyTime)
	ds.str("00080050", "SH", st.AccessionNumber)
	ds.strs("00080061", "CS", st.ModalitiesInStudy)
	ds.pn("00080090", st.ReferringPhysicianName)
	ds.str("00081030", "LO", st.StudyDescription)
	ds.pn("00100010", st.PatientName)
	ds.str("00100020", "LO", st.PatientID)
	ds.str("00100030", "DA", st.PatientBirthDate)
	ds.str("00100040", "CS", st.PatientSex)
	ds.str("0020000D", "UI", st.StudyInstanceUID)
	ds.str("00200010", "SH", st.StudyID)
	ds.num("00201206", "IS", st.NumSeries, true)
	ds.num("00201208", "IS", st.NumInstances, true)
	ds.str("00080056", "CS", "ONLINE")
	ds.str("00081190", "UR", studyURL(base, st.StudyInstanceUID))
	return ds
}

func seriesDataset(base string, se *store.Series) dataset {
	ds := dataset{}
	ds.str("0020000D", "UI", se.Study.StudyInstanceUID)
	ds.str("00080060", "CS", se.Modality)
	ds.str("0008103E", "LO", se.SeriesDescription)
	ds.num("00200011", "IS", se.SeriesNumber, se.SeriesNumber != 0)
	ds.str("0020000E", "UI", se.SeriesInstanceUID)
	ds.str("00180015", "CS", se.BodyPartExamined)
	ds.num("00201209", "IS", se.NumInstances, true)
	ds.str("00081190", "UR", studyURL(base, se.Study.StudyInstanceUID)+"/series/"+url.PathEscape(se.SeriesInstanceUID))
	return ds
}

func instanceDataset(base string, in *store.InstanceRecord) dataset {
	ds := dataset{}
	ds.str("0020000D", "UI", in.Series.Study.StudyInstanceUID)
	ds.str("0020000E", "UI", in.Series.SeriesInstanceUID)
	ds.str("00080016", "UI", in.SOPClassUID)
	ds.str("00080018", "UI", in.SOPInstanceUID)
	ds.num("00200013", "IS", in.InstanceNumber, in.InstanceNumber != 0)
	ds.num("00280010", "US", in.Rows, in.Rows != 0)
	ds.num("00280011", "US", in.Columns, in.Columns != 0)
	ds.num("00280100", "US", in.BitsAllocated, in.BitsAllocated != 0)
	ds.num("00280008", "IS", in.NumberOfFrames, in.NumberOfFrames != 0)
	ds.str("00083002", "UI", in.TransferSyntaxUID)
	ds.str("00080056", "CS", "ONLINE")
	ds.str("00081190", "UR", instanceURL(base, in.Series.Study.StudyInstanceUID, in.Series.SeriesInstanceUID, in.SOPInstanceUID))
	return ds
}
