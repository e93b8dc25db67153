package triage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/radtriage/radtriage/volume"
	"github.com/radtriage/radtriage/worklist"
)

// Urgency is the worklist tier of a study: the more urgent of the tier
// its order's priority gives (worklist.PriorityTier: STAT → critical;
// HIGH, URGENT, ASAP → urgent; else routine) and the tiers of its positive
// findings. Findings only ever raise a study's urgency; a study with none
// keeps its order's tier.
func Urgency(orderPriority string, findings []Finding) worklist.Tier {
	t := worklist.PriorityTier(orderPriority)
	for _, f := range findings {
		t = worklist.MoreUrgent(t, worklist.Tier(f.Tier))
	}
	return t
}

// WorklistFindings are the findings as the worklist shows them: one entry
// per positive finding, with the models that made it.
func WorklistFindings(findings []Finding) []worklist.Finding {
	out := make([]worklist.Finding, 0, len(findings))
	for _, f := range findings {
		out = append(out, worklist.Finding{
			Code: f.Code, Name: f.Label, Probability: f.Probability,
			Tier: worklist.Tier(f.Tier), VolumeML: f.VolumeML, Model: strings.Join(f.ModelVersions, ", "),
		})
	}
	return out
}

// StoredResult is a triage result as a store keeps it.
type StoredResult struct {
	StudyUID, SeriesUID string
	// Tier is the result's tier (Result.Tier: findings only).
	Tier string
	// JSON is the Result as "radtriage triage --json" prints it.
	JSON []byte
	// Mask is the label map as gzip-compressed NIfTI-1 (.nii.gz) on the
	// series' grid; nil when the result has none.
	Mask []byte
	// At is when the triage finished.
	At time.Time
}

// ResultStore keeps the latest triage result of each study (the store
// package's DB implements it, in SQL with the mask as a blob). Saving a
// study again replaces its result. TriageResult returns an error wrapping
// the store's not-found error for a study without one.
type ResultStore interface {
	SaveTriageResult(ctx context.Context, r StoredResult) error
	TriageResult(ctx context.Context, studyUID string) (StoredResult, error)
}

// Stored returns the result in the form a ResultStore keeps.
func (r *Result) Stored(at time.Time) (StoredResult, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return StoredResult{}, err
	}
	s := StoredResult{StudyUID: r.StudyUID, SeriesUID: r.SeriesUID, Tier: r.Tier, JSON: js, At: at.UTC()}
	if r.Mask != nil {
		if s.Mask, err = r.MaskNIfTI(); err != nil {
			return StoredResult{}, err
		}
	}
	return s, nil
}

// MaskLabels names the mask's labels: "1=ICH 2=SDH".
func (r *Result) MaskLabels() string {
	parts := make([]string, len(r.MaskCodes))
	for i, c := range r.MaskCodes {
		parts[i] = fmt.Sprintf("%d=%s", i+1, c)
	}
	return strings.Join(parts, " ")
}

// WriteMaskNIfTI writes the label mask as NIfTI-1 to w: INT16 labels on
// the series' geometry (rows bottom to top as dcm2niix writes them; the
// affine says where each voxel is), the labels named in the header's
// description.
func (r *Result) WriteMaskNIfTI(w io.Writer) error {
	if r.Mask == nil {
		return fmt.Errorf("triage: study %s has no mask", r.StudyUID)
	}
	m := *r.Mask
	m.SeriesInstanceUID = r.SeriesUID
	return volume.WriteNIfTI(w, &m, volume.NIfTIOptions{Description: "radtriage labels: " + r.MaskLabels()})
}

// MaskNIfTI is WriteMaskNIfTI's file gzip-compressed (.nii.gz).
func (r *Result) MaskNIfTI() ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := r.WriteMaskNIfTI(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
