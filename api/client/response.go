package client

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Status is the outcome of one instance.
type Status int

const (
	// Stored: the server holds the instance.
	Stored Status = iota + 1
	// Warned: stored, with a warning (for example a different instance
	// already stored under the same SOP Instance UID).
	Warned
	// Failed: not stored.
	Failed
)

func (s Status) String() string {
	switch s {
	case Stored:
		return "stored"
	case Warned:
		return "warning"
	case Failed:
		return "failed"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Result is the outcome of one file.
type Result struct {
	Path           string
	SOPInstanceUID string
	Status         Status
	// Code is the DICOM FailureReason (0008,1197) or WarningReason
	// (0008,1196) the server gave; 0 when none (or the failure happened
	// before the server answered).
	Code uint16
	// Reason is a sentence for people; empty when stored without warning.
	Reason string
}

// Response is the part of a STOW-RS response data set (PS3.18 Table
// I.2-2) the client uses.
type Response struct {
	Referenced []Referenced // ReferencedSOPSequence (0008,1199)
	Failed     []Referenced // FailedSOPSequence (0008,1198)
}

// Referenced is one item of ReferencedSOPSequence or FailedSOPSequence.
type Referenced struct {
	SOPClassUID    string // (0008,1150)
	SOPInstanceUID string // (0008,1155)
	RetrieveURL    string // (0008,1190)
	FailureReason  uint16 // (0008,1197), failed items
	WarningReason  uint16 // (0008,1196), referenced items; 0: none
	// Comment is the server's sentence about the failure or warning:
	// radtriage's private (0009,1001) under creator "RADTRIAGE" in
	// (0009,0010). Empty from other servers.
	Comment string
}

// jsonAttr is one attribute in the DICOM JSON model (PS3.18 F.2).
type jsonAttr struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

type jsonDataset map[string]jsonAttr

// ParseResponse decodes an application/dicom+json STOW-RS response body.
// The DICOM JSON model allows either a single object or an array holding
// one; both are accepted.
func ParseResponse(body []byte) (*Response, error) {
	var ds jsonDataset
	if err := json.Unmarshal(body, &ds); err != nil {
		var arr []jsonDataset
		if err2 := json.Unmarshal(body, &arr); err2 != nil || len(arr) != 1 {
			return nil, fmt.Errorf("STOW-RS response is not a DICOM JSON data set: %w", err)
		}
		ds = arr[0]
	}
	var resp Response
	var err error
	if resp.Referenced, err = ds.items("00081199"); err != nil {
		return nil, err
	}
	if resp.Failed, err = ds.items("00081198"); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (ds jsonDataset) items(key string) ([]Referenced, error) {
	a, ok := ds[key]
	if !ok {
		return nil, nil
	}
	var out []Referenced
	for i, raw := range a.Value {
		var item jsonDataset
		var err error
		if err := json.Unmarshal(raw, &item); err != nil {
			return nil, fmt.Errorf("STOW-RS response: (%s,%s) item %d: %w", key[:4], key[4:], i+1, err)
		}
		ref := Referenced{
			SOPClassUID:    item.str("00081150"),
			SOPInstanceUID: item.str("00081155"),
			RetrieveURL:    item.str("00081190"),
		}
		if item.str("00090010") == "RADTRIAGE" {
			ref.Comment = item.str("00091001")
		}
		if ref.FailureReason, err = item.us("00081197"); err != nil {
			return nil, err
		}
		if ref.WarningReason, err = item.us("00081196"); err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	return out, nil
}

func (ds jsonDataset) str(key string) string {
	a, ok := ds[key]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) != nil {
		return ""
	}
	return s
}

func (ds jsonDataset) us(key string) (uint16, error) {
	a, ok := ds[key]
	if !ok || len(a.Value) == 0 {
		return 0, nil
	}
	var n uint64
	if err := json.Unmarshal(a.Value[0], &n); err != nil || n > 0xFFFF {
		return 0, fmt.Errorf("STOW-RS response: (%s,%s) is not a US value: %s", key[:4], key[4:], a.Value[0])
	}
	return uint16(n), nil
}

// reasonText names the DICOM status codes of PS3.18 Table I.2-3 and the
// PS3.4 storage statuses a STOW-RS server uses.
func reasonText(code uint16) string {
	switch {
	case code == 0x0110:
		return "processing failure"
	case code == 0x0122:
		return "SOP class not supported"
	case code == 0x0124:
		return "not authorized"
	case code == 0xB000:
		return "coercion of data elements"
	case code == 0xB006:
		return "elements discarded"
	case code == 0xB007:
		return "data set does not match SOP class"
	case code == 0xC122:
		return "transfer syntax not supported"
	case code == 0xC409:
		return "study instance UID does not match the target study"
	case code&0xFF00 == 0xA700:
		return "out of resources"
	case code&0xFF00 == 0xA900:
		return "data set does not match SOP class"
	case code&0xF000 == 0xC000:
		return "cannot understand"
	}
	return "unknown reason"
}

// describe formats a DICOM status code, and the server's comment when it
// gave one, for people: "0xA900 data set does not match SOP class: …".
func describe(code uint16, comment string) string {
	s := fmt.Sprintf("0x%04X %s", code, reasonText(code))
	if comment != "" {
		s += ": " + comment
	}
	return s
}

// apply turns a response into one Result per file of the batch: files are
// matched to response items by SOP Instance UID.
func (r *Response) apply(batch []File) []Result {
	type verdict struct {
		status  Status
		code    uint16
		comment string
	}
	got := make(map[string]verdict, len(batch))
	for _, ref := range r.Referenced {
		v := verdict{Stored, 0, ""}
		if ref.WarningReason != 0 {
			v = verdict{Warned, ref.WarningReason, ref.Comment}
		}
		got[ref.SOPInstanceUID] = v
	}
	var anonymous []verdict // failures the server could not attach to a UID
	for _, ref := range r.Failed {
		v := verdict{Failed, ref.FailureReason, ref.Comment}
		if ref.SOPInstanceUID == "" {
			anonymous = append(anonymous, v)
			continue
		}
		got[ref.SOPInstanceUID] = v
	}
	out := make([]Result, 0, len(batch))
	for _, f := range batch {
		res := Result{Path: f.Path, SOPInstanceUID: f.SOPInstanceUID}
		v, ok := got[f.SOPInstanceUID]
		switch {
		case ok:
			res.Status, res.Code = v.status, v.code
			if v.code != 0 {
				res.Reason = describe(v.code, v.comment)
			}
		case len(anonymous) > 0:
			v := anonymous[0]
			anonymous = anonymous[1:]
			res.Status, res.Code = Failed, v.code
			res.Reason = describe(v.code, v.comment) + " (the server could not read the SOP Instance UID)"
		default:
			res.Status = Failed
			res.Reason = "the server's response does not mention this instance"
		}
		out = append(out, res)
	}
	return out
}
