package dicomio

import (
	"errors"
	"fmt"
)

// Instance is what radtriage extracts from one DICOM instance at ingest:
// the identifying UIDs, the attributes QIDO-RS matches and returns, and
// the geometry the volume package needs. Strings are trimmed of DICOM
// padding; absent values are zero values (and HasX flags where zero is
// meaningful).
type Instance struct {
	// File meta / identification.
	TransferSyntaxUID string
	SOPClassUID       string
	SOPInstanceUID    string
	StudyInstanceUID  string
	SeriesInstanceUID string

	// Patient level.
	PatientID        string
	PatientName      string
	PatientBirthDate string // YYYYMMDD
	PatientSex       string

	// Study level.
	StudyDate                  string // YYYYMMDD
	StudyTime                  string // HHMMSS[.ffffff]
	AccessionNumber            string
	StudyID                    string
	StudyDescription           string
	ReferringPhysicianName     string
	RequestedProcedurePriority string // STAT, HIGH, ROUTINE, MEDIUM, LOW (worklist issue)

	// Series level.
	Modality          string
	SeriesNumber      int
	SeriesDescription string
	SeriesDate        string
	SeriesTime        string
	BodyPartExamined  string

	// Instance level.
	InstanceNumber int
	ContentDate    string
	ContentTime    string

	// Image pixel module (zero when the instance has no pixel data).
	Rows                      int
	Columns                   int
	NumberOfFrames            int // 1 when the attribute is absent on an image
	SamplesPerPixel           int
	BitsAllocated             int
	BitsStored                int
	HighBit                   int
	PixelRepresentation       int // 0 unsigned, 1 two's complement
	PlanarConfiguration       int
	PhotometricInterpretation string

	// Geometry for volume assembly (patient coordinates, DICOM LPS, mm).
	ImagePositionPatient    []float64 // 3 values or nil
	ImageOrientationPatient []float64 // 6 values or nil
	PixelSpacing            []float64 // row spacing, column spacing; or nil
	SliceThickness          float64
	HasRescale              bool
	RescaleSlope            float64 // 1 when absent
	RescaleIntercept        float64

	// HasPixelData reports a Pixel Data (7FE0,0010) element at top level;
	// Encapsulated reports that it uses an encapsulated transfer syntax.
	HasPixelData bool
	Encapsulated bool

	// VolumeInfo: attributes for volume assembly (geometry.go).
	VolumeInfo
}

// FailureReason is a DICOM status code used as FailureReason (0008,1197)
// or WarningReason (0008,1196) in a STOW-RS response (PS3.18 Table I.2-3).
type FailureReason uint16

// Failure and warning reasons used by radtriage.
const (
	ReasonProcessingFailure        FailureReason = 0x0110 // Processing failure
	ReasonSOPClassNotSupported     FailureReason = 0x0122 // Referenced SOP Class not supported
	ReasonOutOfResources           FailureReason = 0xA700 // Refused: out of resources
	ReasonDoesNotMatchSOPClass     FailureReason = 0xA900 // Error: data set does not match SOP Class
	ReasonCannotUnderstand         FailureReason = 0xC000 // Error: cannot understand
	ReasonTransferSyntaxNotSupport FailureReason = 0xC122 // Referenced Transfer Syntax not supported
	// ReasonStudyMismatch: the instance's Study Instance UID is not the study
	// of POST /studies/{study}. PS3.18 §I.2.2 has no code for it and allows
	// implementation codes; radtriage uses 0xC409 (an "Error: cannot
	// understand" code, documented in the README's conformance notes).
	ReasonStudyMismatch FailureReason = 0xC409

	WarnCoercion        FailureReason = 0xB000 // Coercion of data elements
	WarnElementsDiscard FailureReason = 0xB006 // Elements discarded
	WarnDoesNotMatch    FailureReason = 0xB007 // Data set does not match SOP Class
)

// RejectError is the refusal of one instance: the instance's SOP Instance
// UID when it could be read, the failure reason code and a human sentence.
type RejectError struct {
	SOPClassUID    string // may be empty
	SOPInstanceUID string // may be empty when the UID itself is unreadable
	Code           FailureReason
	Reason         string
	Err            error // underlying cause, if any
}

func (e *RejectError) Error() string {
	who := e.SOPInstanceUID
	if who == "" {
		who = "instance"
	}
	if e.Err != nil {
		return fmt.Sprintf("%s refused (0x%04X): %s: %v", who, uint16(e.Code), e.Reason, e.Err)
	}
	return fmt.Sprintf("%s refused (0x%04X): %s", who, uint16(e.Code), e.Reason)
}

func (e *RejectError) Unwrap() error { return e.Err }

// AsReject returns the *RejectError in err's chain, or nil.
func AsReject(err error) *RejectError {
	var r *RejectError
	if errors.As(err, &r) {
		return r
	}
	return nil
}
