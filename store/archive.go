package store

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/radtriage/radtriage/dicomio"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no study/series/instance matches.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: an instance exceeded StoreOptions.MaxBytes.
	ErrTooLarge = errors.New("instance too large")
	// ErrUnavailable: the database cannot be reached right now; the
	// caller should answer 503 with Retry-After. Nothing was acknowledged.
	ErrUnavailable = errors.New("index database unavailable")
	// ErrInvalidQuery: a Query value cannot be matched (a malformed date
	// range or number); the caller answers 400.
	ErrInvalidQuery = errors.New("invalid query")
)

// Outcome of storing one instance.
type Outcome int

const (
	// Stored: new instance, now durable.
	Stored Outcome = iota + 1
	// AlreadyStored: the same SOP Instance UID with identical bytes was
	// already stored; nothing new was written.
	AlreadyStored
	// Conflict: the SOP Instance UID was already stored with different
	// bytes. The first version is kept and served; the new bytes are kept
	// aside (not served) for audit. Reported as a warning.
	Conflict
)

// StoreOptions tune one Store call.
type StoreOptions struct {
	// Study, when set, is the target study of STOW-RS POST /studies/{study};
	// an instance of another study is refused (ReasonStudyMismatch).
	Study string
	// MaxBytes bounds one instance's size (0: no bound). Exceeding it
	// returns an error wrapping ErrTooLarge.
	MaxBytes int64
}

// StoreResult describes a stored (or already stored) instance.
type StoreResult struct {
	Instance *dicomio.Instance
	Outcome  Outcome
	Size     int64
	SHA256   string // hex
}

// Study is one row of a study-level query.
type Study struct {
	StudyInstanceUID       string
	PatientID              string
	PatientName            string
	PatientBirthDate       string
	PatientSex             string
	StudyDate              string
	StudyTime              string
	AccessionNumber        string
	StudyID                string
	StudyDescription       string
	ReferringPhysicianName string
	// RequestedProcedurePriority as first received (STAT, HIGH, ROUTINE…).
	RequestedProcedurePriority string
	ModalitiesInStudy          []string
	NumSeries                  int
	NumInstances               int
	FirstReceived              time.Time
	LastReceived               time.Time
	Stable                     bool
}

// Series is one row of a series-level query (with its study's attributes
// for flat queries).
type Series struct {
	Study             Study
	SeriesInstanceUID string
	Modality          string
	SeriesNumber      int
	SeriesDescription string
	BodyPartExamined  string
	NumInstances      int
}

// InstanceRecord is one stored instance as the index knows it.
type InstanceRecord struct {
	Series            Series
	SOPClassUID       string
	SOPInstanceUID    string
	TransferSyntaxUID string
	InstanceNumber    int
	Rows              int
	Columns           int
	NumberOfFrames    int
	BitsAllocated     int
	Size              int64
	SHA256            string
	Received          time.Time

	// Geometry for volume assembly (patient coordinates, DICOM LPS, mm),
	// as dicomio.Instance has it.
	ImagePositionPatient    []float64 // 3 values or nil
	ImageOrientationPatient []float64 // 6 values or nil
	PixelSpacing            []float64 // row, column; or nil
	SliceThickness          float64
	HasRescale              bool
	RescaleSlope            float64
	RescaleIntercept        float64

	blobPath string // set by FindInstances; Open's shortcut
}

// Query selects studies, series or instances. Empty fields do not
// restrict. Matching follows PS3.4 C.2.2.2 as QIDO-RS requires:
// PatientName is a wildcard pattern (* and ?, case-insensitive);
// StudyDate is a single date or a range "A-B", "A-", "-B" (YYYYMMDD);
// list fields match any of their values.
type Query struct {
	StudyInstanceUIDs  []string
	PatientID          string
	PatientName        string
	StudyDate          string
	StudyTime          string
	AccessionNumber    string
	StudyID            string
	ReferringPhysician string
	ModalitiesInStudy  []string

	SeriesInstanceUIDs []string
	Modality           []string
	SeriesNumber       string

	SOPInstanceUIDs []string
	SOPClassUIDs    []string
	InstanceNumber  string

	Limit  int // 0: no limit
	Offset int
}

// StabilityNotifier hears when a study becomes stable: no new instance for
// the configured stable age. The pipeline connects it to the job queue.
// It is called at most once per transition, from one process.
type StabilityNotifier interface {
	StudyStable(ctx context.Context, studyUID string, instances int) error
}

// Archive is the store as the API uses it.
type Archive interface {
	// Store reads one instance from r, validates it (dicomio), and makes it
	// durable. Per-instance refusals are *dicomio.RejectError.
	Store(ctx context.Context, r io.Reader, opts StoreOptions) (*StoreResult, error)
	// Receive is the first half of Store: it consumes r into a temp file
	// and returns the instance pending; Pending.Commit is the second half.
	// It lets a caller read the next part of a request while this one is
	// validated and committed.
	Receive(ctx context.Context, r io.Reader, opts StoreOptions) (*Pending, error)

	FindStudies(ctx context.Context, q Query) ([]Study, error)
	FindSeries(ctx context.Context, q Query) ([]Series, error)
	FindInstances(ctx context.Context, q Query) ([]InstanceRecord, error)

	// Open returns the stored bytes of one instance (exactly as received).
	Open(ctx context.Context, rec InstanceRecord) (io.ReadSeekCloser, error)

	// Ping checks the index database (readiness).
	Ping(ctx context.Context) error
}
