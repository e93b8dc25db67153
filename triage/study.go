package triage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/radtriage/radtriage/volume"
)

// ErrNoSeries: a study has no series that triage can run on (no image
// series at all, or none that volume.Choose accepts). Retrying does not
// help.
var ErrNoSeries = errors.New("no series to triage")

// StudyRun is the triage of one study: the series chosen and why, its
// volume, the result, and what reading and assembling it noticed.
type StudyRun struct {
	Result *Result
	// Volume is the chosen series assembled (the grid of Result.Mask).
	Volume *volume.Volume
	// Reason says why that series was chosen (volume.Choose).
	Reason string
	// Notes are the chosen series' and its volume's warnings ("code:
	// message") and notes, for a log.
	Notes []string
}

// RunStudy chooses one series of a study as "radtriage volume" does
// (volume.Choose), assembles it and runs the ensemble on it. series are
// the study's series (as volume.LoadDir found them); loadMS is the time
// spent reading them, added to the result's assemble time. An error
// wraps ErrNoSeries when no series fits.
func (e *Ensemble) RunStudy(ctx context.Context, studyUID string, series []*volume.Series, loadMS float64) (*StudyRun, error) {
	start := time.Now()
	stack, reason, err := volume.Choose(&volume.Collection{Series: series})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSeries, err)
	}
	v, err := stack.Assemble(volume.AssembleOptions{})
	if err != nil {
		return nil, fmt.Errorf("assembling series %s: %w", stack.SeriesUID, err)
	}
	run := &StudyRun{Volume: v, Reason: fmt.Sprintf("series %s: %s", stack.SeriesUID, reason)}
	for _, s := range series {
		if s.UID == stack.SeriesUID {
			for _, w := range s.Warnings {
				run.Notes = append(run.Notes, "warning: "+string(w.Code)+": "+w.Message)
			}
		}
	}
	for _, w := range v.Warnings {
		run.Notes = append(run.Notes, "warning: "+string(w.Code)+": "+w.Message)
	}
	for _, n := range v.Notes {
		run.Notes = append(run.Notes, "note: "+n)
	}
	assembleMS := loadMS + float64(time.Since(start).Microseconds())/1000
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := e.Run(ctx, v, studyUID)
	if err != nil {
		return nil, fmt.Errorf("triage of series %s: %w", stack.SeriesUID, err)
	}
	r.TimingsMS.Assemble = assembleMS
	r.TimingsMS.Total += assembleMS
	run.Result = r
	return run, nil
}

// RunFS triages the study studyUID from the DICOM files of fsys (any
// layout, as volume.LoadDir reads it; files of other studies are left
// out). It is what a triage worker runs on a stored study.
func (e *Ensemble) RunFS(ctx context.Context, fsys fs.FS, studyUID string) (*StudyRun, error) {
	start := time.Now()
	series, skipped, err := studySeries(fsys, studyUID)
	if err != nil {
		return nil, fmt.Errorf("reading study %s: %w", studyUID, err)
	}
	if len(series) == 0 {
		return nil, fmt.Errorf("%w: study %s has no DICOM image series (%d files skipped)", ErrNoSeries, studyUID, skipped)
	}
	return e.RunStudy(ctx, studyUID, series, float64(time.Since(start).Microseconds())/1000)
}

// studySeries reads the DICOM files of fsys (volume.LoadDir) and returns
// the image series of study studyUID, and how many files were skipped.
func studySeries(fsys fs.FS, studyUID string) ([]*volume.Series, int, error) {
	col, err := volume.LoadDir(fsys, volume.LoadOptions{})
	if err != nil {
		return nil, 0, err
	}
	var series []*volume.Series
	for _, s := range col.Series {
		if s.StudyUID == studyUID {
			series = append(series, s)
		}
	}
	return series, len(col.Skipped), nil
}
