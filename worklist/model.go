package worklist

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Tier is the urgency class of a study. Each tier has a reading deadline
// (Config.Deadlines); a study's due time is its received time plus the
// deadline of its tier.
type Tier string

// The tiers, most urgent first.
const (
	TierCritical Tier = "critical"
	TierUrgent   Tier = "urgent"
	TierRoutine  Tier = "routine"
)

// Tiers lists the valid tiers, most urgent first.
var Tiers = []Tier{TierCritical, TierUrgent, TierRoutine}

// Valid reports whether t is one of TierCritical, TierUrgent, TierRoutine.
func (t Tier) Valid() bool { return t.rank() >= 0 }

// rank is 0 for critical, 1 for urgent, 2 for routine, -1 for anything else.
func (t Tier) rank() int {
	switch t {
	case TierCritical:
		return 0
	case TierUrgent:
		return 1
	case TierRoutine:
		return 2
	}
	return -1
}

// MoreUrgent returns the more urgent of a and b; an invalid tier loses to a
// valid one.
func MoreUrgent(a, b Tier) Tier {
	switch {
	case !a.Valid():
		return b
	case !b.Valid():
		return a
	case b.rank() < a.rank():
		return b
	}
	return a
}

// ParseTier returns the tier named s (case-insensitive), or an error wrapping
// ErrInvalid.
func ParseTier(s string) (Tier, error) {
	t := Tier(strings.ToLower(strings.TrimSpace(s)))
	if !t.Valid() {
		return "", fmt.Errorf("%w: unknown tier %q (want critical, urgent or routine)", ErrInvalid, s)
	}
	return t, nil
}

// PriorityTier maps an order's priority, as found in the DICOM header
// (RequestedProcedurePriority (0040,1003), or a STAT flag), to a tier,
// case-insensitively and ignoring surrounding spaces:
//
//	STAT                      → critical
//	HIGH, URGENT, ASAP        → urgent
//	anything else (ROUTINE,
//	MEDIUM, LOW, empty)       → routine
func PriorityTier(orderPriority string) Tier {
	switch strings.ToUpper(strings.TrimSpace(orderPriority)) {
	case "STAT":
		return TierCritical
	case "HIGH", "URGENT", "ASAP":
		return TierUrgent
	}
	return TierRoutine
}

// Status is where an item stands in the reading workflow.
type Status string

// The statuses. Open and claimed items are in the queue (ordered by due
// time); done items are kept in a separate set for Config.DoneRetention.
const (
	StatusOpen    Status = "open"
	StatusClaimed Status = "claimed"
	StatusDone    Status = "done"
)

// Valid reports whether s is one of StatusOpen, StatusClaimed, StatusDone.
func (s Status) Valid() bool {
	return s == StatusOpen || s == StatusClaimed || s == StatusDone
}

// AIStatus is where a study's AI triage stands.
type AIStatus string

// The AI statuses. A study enters the worklist pending; findings make it
// done; a triage job that ended in the dead-letter state makes it failed (the
// study stays on the worklist, placed by its order priority).
const (
	AIPending AIStatus = "pending"
	AIDone    AIStatus = "done"
	AIFailed  AIStatus = "failed"
)

// Valid reports whether s is one of AIPending, AIDone, AIFailed.
func (s AIStatus) Valid() bool { return s == AIPending || s == AIDone || s == AIFailed }

// Study is what the worklist knows of a study from its DICOM headers.
type Study struct {
	StudyUID        string `json:"studyUID"`
	PatientID       string `json:"patientID,omitempty"`
	PatientName     string `json:"patientName,omitempty"`
	AccessionNumber string `json:"accessionNumber,omitempty"`
	// Modality and BodyPart are stored upper-case (DICOM code strings);
	// filters compare them upper-case too.
	Modality      string `json:"modality,omitempty"`
	BodyPart      string `json:"bodyPart,omitempty"`
	Description   string `json:"description,omitempty"`
	OrderPriority string `json:"orderPriority,omitempty"` // RequestedProcedurePriority or "STAT"; see PriorityTier
	// Received is when the study arrived; the first Upsert's value is kept.
	// Zero means Config.Now() at the first Upsert.
	Received time.Time `json:"received"`
}

// Finding is one AI result on a study, as triage reports it.
type Finding struct {
	Code        string  `json:"code"`               // machine code, e.g. "ich"
	Name        string  `json:"name"`               // human name, e.g. "intracranial haemorrhage"
	Probability float64 `json:"probability"`        // 0..1
	Tier        Tier    `json:"tier"`               // the urgency triage assigns to this finding
	VolumeML    float64 `json:"volumeML,omitempty"` // lesion volume in millilitres, 0 when not measured
	Model       string  `json:"model,omitempty"`    // model name and version
}

// Override is a manual priority set by a radiologist or an admin. It
// replaces the computed tier and/or due time until cleared: with Tier set,
// the tier is Tier and (unless Due is set) the due time is Received plus
// that tier's deadline; with Due set, the due time is Due. At least one of
// the two is required.
type Override struct {
	Tier   Tier      `json:"tier,omitempty"`
	Due    time.Time `json:"due,omitzero"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"` // zero means Config.Now() when set
}

// Item is a study on the worklist with its place and workflow state.
type Item struct {
	Study
	Tier       Tier      `json:"tier"`   // effective tier (override, else the most urgent of order priority and findings)
	Due        time.Time `json:"due"`    // the sort key: earliest first
	Status     Status    `json:"status"` // open, claimed or done
	ClaimedBy  string    `json:"claimedBy,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"` // when the claim lapses unless renewed
	Finding    *Finding  `json:"finding,omitempty"`   // the finding that sets the tier (most urgent, then most probable); nil when none
	Override   *Override `json:"override,omitempty"`
	// AI is where AI triage of the study stands (pending until findings are
	// set, failed when triage gave up); AIError is the reason of a failure.
	AI      AIStatus `json:"ai"`
	AIError string   `json:"aiError,omitempty"`
	// Reason says why the item sits where it does: tier and why (override,
	// finding with probability, or order priority), "AI pending" or "AI
	// failed" when so, and time left or overdue. It is computed when the
	// item is read.
	Reason      string    `json:"reason"`
	UpdatedBy   string    `json:"updatedBy,omitempty"`
	UpdatedAt   time.Time `json:"updatedAt"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
}

// Event types appended to the stream.
const (
	EventAdded           = "added"            // a new study
	EventUpdated         = "updated"          // header fields changed
	EventReprioritised   = "reprioritised"    // findings changed
	EventClaimed         = "claimed"          // claimed, or a claim renewed
	EventReleased        = "released"         // the holder gave the study back
	EventCompleted       = "completed"        // read and done
	EventExpired         = "expired"          // a lease lapsed; back to open
	EventOverridden      = "overridden"       // manual priority set
	EventOverrideCleared = "override-cleared" // manual priority removed
	EventRebuilt         = "rebuilt"          // the whole list was rebuilt from the store; reload it (Item is nil)
	EventAI              = "ai"               // the AI status changed (SetAIStatus)
)

// Event is one change to the worklist, as read back from the stream.
type Event struct {
	ID       string    `json:"id"` // stream entry ID; pass to Events to resume after it
	Type     string    `json:"type"`
	StudyUID string    `json:"studyUID,omitempty"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Item     *Item     `json:"item,omitempty"` // the item just after the change
}

// Filter selects and pages items for List. Zero fields match everything.
type Filter struct {
	Modality string // exact, case-insensitive
	BodyPart string // exact, case-insensitive
	Tier     Tier   // effective tier
	// Status: "" lists the queue (open and claimed, by due time); StatusOpen
	// or StatusClaimed narrow it; StatusDone lists completed items by
	// completion time, oldest first.
	Status Status
	Limit  int    // page size; 0 means 50, at most 500
	Cursor string // from a previous List's next; "" starts at the top
}

// reason builds Item.Reason at time now.
func reason(it *Item, now time.Time) string {
	var b strings.Builder
	b.WriteString(string(it.Tier))
	b.WriteString(": ")
	switch {
	case it.Override != nil:
		fmt.Fprintf(&b, "manual priority by %s", orSomeone(it.Override.By))
		if it.Override.Reason != "" {
			fmt.Fprintf(&b, " (%s)", it.Override.Reason)
		}
	case it.Finding != nil && it.Finding.Tier.Valid() && it.Finding.Tier.rank() <= PriorityTier(it.OrderPriority).rank():
		f := it.Finding
		name := f.Name
		if name == "" {
			name = f.Code
		}
		fmt.Fprintf(&b, "%s, probability %.0f%%", name, math.Round(f.Probability*100))
		if f.VolumeML > 0 {
			fmt.Fprintf(&b, ", %.1f mL", f.VolumeML)
		}
	case it.OrderPriority != "":
		fmt.Fprintf(&b, "order priority %s", strings.ToUpper(strings.TrimSpace(it.OrderPriority)))
	default:
		b.WriteString("no urgent finding or order priority")
	}
	switch it.AI {
	case AIPending:
		b.WriteString("; AI pending")
	case AIFailed:
		b.WriteString("; AI failed")
	}
	if it.Status == StatusDone {
		b.WriteString("; completed")
		return b.String()
	}
	left := it.Due.Sub(now)
	if left >= 0 {
		fmt.Fprintf(&b, "; %s left", humanDuration(left))
	} else {
		fmt.Fprintf(&b, "; overdue by %s", humanDuration(-left))
	}
	return b.String()
}

func orSomeone(s string) string {
	if s == "" {
		return "unknown user"
	}
	return s
}

// humanDuration rounds d to minutes ("12 min", "3 h 05 min", "2 d 4 h"),
// or seconds under a minute.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %02d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%d d %d h", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// Errors callers branch on. Errors returned by the Worklist wrap one of
// these with context (errors.Is works).
var (
	ErrNotFound   = errors.New("worklist: study not found")
	ErrConflict   = errors.New("worklist: study claimed by someone else")
	ErrCompleted  = errors.New("worklist: study already completed")
	ErrNotClaimed = errors.New("worklist: study is not claimed")
	ErrInvalid    = errors.New("worklist: invalid input")
	// ErrUnavailable: Redis cannot be reached right now; nothing changed
	// that the caller was told about, and the call may be retried.
	ErrUnavailable = errors.New("worklist: Redis unavailable")
)

// ClaimConflictError is returned when a study is claimed by another user
// whose lease has not lapsed. errors.Is(err, ErrConflict) is true.
type ClaimConflictError struct {
	StudyUID string
	Holder   string
	Until    time.Time // lease expiry
}

// Error names the holder and the lease expiry.
func (e *ClaimConflictError) Error() string {
	return fmt.Sprintf("worklist: study %s is claimed by %s until %s", e.StudyUID, e.Holder, e.Until.UTC().Format(time.RFC3339))
}

// Is reports whether target is ErrConflict.
func (e *ClaimConflictError) Is(target error) bool { return target == ErrConflict }
