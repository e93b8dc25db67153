package worklist

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPriorityTier(t *testing.T) {
	for _, c := range []struct {
		prio string
		want Tier
	}{
		{"STAT", TierCritical}, {" stat ", TierCritical},
		{"HIGH", TierUrgent}, {"urgent", TierUrgent}, {"ASAP", TierUrgent},
		{"ROUTINE", TierRoutine}, {"MEDIUM", TierRoutine}, {"LOW", TierRoutine}, {"", TierRoutine}, {"whenever", TierRoutine},
	} {
		if got := PriorityTier(c.prio); got != c.want {
			t.Errorf("PriorityTier(%q) = %s, want %s", c.prio, got, c.want)
		}
	}
}

func TestParseTierAndMoreUrgent(t *testing.T) {
	if tier, err := ParseTier(" Critical"); err != nil || tier != TierCritical {
		t.Errorf("ParseTier = %s, %v", tier, err)
	}
	if _, err := ParseTier("stat"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseTier(stat): %v", err)
	}
	for _, c := range [][3]Tier{
		{TierRoutine, TierUrgent, TierUrgent}, {TierCritical, TierUrgent, TierCritical},
		{"", TierRoutine, TierRoutine}, {TierUrgent, "x", TierUrgent}, {TierUrgent, TierUrgent, TierUrgent},
	} {
		if got := MoreUrgent(c[0], c[1]); got != c[2] {
			t.Errorf("MoreUrgent(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestTopFinding(t *testing.T) {
	if TopFinding(nil) != nil {
		t.Fatal("TopFinding(nil) != nil")
	}
	fs := []Finding{
		{Code: "a", Tier: TierRoutine, Probability: 0.99},
		{Code: "b", Tier: TierUrgent, Probability: 0.6},
		{Code: "c", Tier: TierUrgent, Probability: 0.8},
		{Code: "d", Tier: TierUrgent, Probability: 0.8},
	}
	if top := TopFinding(fs); top.Code != "c" {
		t.Fatalf("top finding %s, want c", top.Code)
	}
	top := TopFinding(fs)
	top.Code = "changed"
	if fs[2].Code != "c" {
		t.Fatal("TopFinding returned an alias into its argument")
	}
}

func TestReason(t *testing.T) {
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	ich := &Finding{Code: "ich", Name: "intracranial haemorrhage", Probability: 0.934, Tier: TierCritical, VolumeML: 12.25}
	for _, c := range []struct {
		name string
		it   Item
		want string
	}{
		{"finding", Item{Tier: TierCritical, Due: now.Add(11*time.Minute + 30*time.Second), Finding: ich},
			"critical: intracranial haemorrhage, probability 93%, 12.2 mL; 11 min left"},
		{"order priority beats a routine finding", Item{Study: Study{OrderPriority: "stat"}, Tier: TierCritical, Due: now.Add(-5 * time.Minute),
			Finding: &Finding{Code: "nod", Probability: 0.5, Tier: TierRoutine}}, "critical: order priority STAT; overdue by 5 min"},
		{"finding named by code", Item{Study: Study{OrderPriority: "HIGH"}, Tier: TierUrgent, Due: now.Add(3*time.Hour + 5*time.Minute),
			Finding: &Finding{Code: "pe", Probability: 0.5, Tier: TierUrgent}}, "urgent: pe, probability 50%; 3 h 05 min left"},
		{"override", Item{Tier: TierRoutine, Due: now.Add(-50 * time.Hour), Finding: ich, Override: &Override{Tier: TierRoutine, Reason: "prior study", By: "dr.x"}},
			"routine: manual priority by dr.x (prior study); overdue by 2 d 2 h"},
		{"nothing", Item{Tier: TierRoutine, Due: now.Add(30 * time.Second)}, "routine: no urgent finding or order priority; 30 s left"},
		{"done", Item{Tier: TierRoutine, Status: StatusDone, Due: now}, "routine: no urgent finding or order priority; completed"},
		{"AI pending", Item{Study: Study{OrderPriority: "STAT"}, Tier: TierCritical, AI: AIPending, Due: now.Add(10 * time.Minute)},
			"critical: order priority STAT; AI pending; 10 min left"},
		{"AI failed", Item{Tier: TierRoutine, AI: AIFailed, AIError: "model crashed", Due: now.Add(time.Minute)},
			"routine: no urgent finding or order priority; AI failed; 1 min left"},
		{"AI done", Item{Tier: TierCritical, AI: AIDone, Due: now.Add(11*time.Minute + 30*time.Second), Finding: ich},
			"critical: intracranial haemorrhage, probability 93%, 12.2 mL; 11 min left"},
		{"AI pending, done", Item{Tier: TierRoutine, AI: AIPending, Status: StatusDone, Due: now},
			"routine: no urgent finding or order priority; AI pending; completed"},
	} {
		if got := reason(&c.it, now); got != c.want {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{Score: 1772438400123, Member: "1.2.840.10008.5.1.4.1.1.2"}
	got, err := DecodeCursor(c.Encode())
	if err != nil || got != c {
		t.Fatalf("DecodeCursor(Encode(%+v)) = %+v, %v", c, got, err)
	}
	for _, bad := range []string{"", "!", "MTIz", base64Of("x:1.2"), base64Of("12:"), base64Of("12:a b"), strings.Repeat("A", 600)} {
		if _, err := DecodeCursor(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeCursor(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func base64Of(s string) string { return Cursor{}.encodeRaw(s) }

func FuzzDecodeCursor(f *testing.F) {
	f.Add(Cursor{Score: 1772438400123, Member: "1.2.3"}.Encode())
	f.Add(Cursor{Score: -1, Member: "x"}.Encode())
	f.Add("")
	f.Add("MTIzOjEuMi4z")
	f.Add(base64Of("99999999999999999999:1"))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeCursor(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		again, err := DecodeCursor(c.Encode())
		if err != nil || again != c {
			t.Fatalf("DecodeCursor(%q) = %+v, which does not round-trip: %+v, %v", s, c, again, err)
		}
	})
}

func FuzzValidEventID(f *testing.F) {
	for _, s := range []string{"0", "0-0", "1700000000000-3", "1-", "-", "$", "18446744073709551616-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidEventID(s) {
			return
		}
		ms, seq, _ := strings.Cut(s, "-")
		if ms == "" || strings.Trim(ms+seq, "0123456789") != "" {
			t.Fatalf("ValidEventID(%q) = true", s)
		}
	})
}
