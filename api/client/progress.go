package client

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Bar is a one-line terminal progress bar for a known number of bytes.
// Add is safe for concurrent use; the line is redrawn at most ten times a
// second, and Finish draws it once more and ends the line.
type Bar struct {
	w     io.Writer
	total int64
	width int
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	done  int64
	drawn time.Time
}

// NewBar returns a bar for total bytes drawn on w (a terminal).
func NewBar(w io.Writer, total int64) *Bar {
	return &Bar{w: w, total: total, width: 30, start: time.Now(), now: time.Now}
}

// Add records n more bytes (negative to take some back).
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if t := b.now(); t.Sub(b.drawn) >= 100*time.Millisecond {
		b.drawn = t
		b.draw(t)
	}
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(b.now())
	fmt.Fprintln(b.w)
}

func (b *Bar) draw(t time.Time) {
	fmt.Fprint(b.w, "\r"+b.line(t))
}

// line renders "[=====>    ]  45%  12.3 MiB / 27.4 MiB  3.2 MiB/s".
func (b *Bar) line(t time.Time) string {
	done := min(max(b.done, 0), b.total)
	frac := 1.0
	if b.total > 0 {
		frac = float64(done) / float64(b.total)
	}
	fill := int(frac * float64(b.width))
	bar := strings.Repeat("=", fill)
	if fill < b.width {
		bar += ">" + strings.Repeat(" ", b.width-fill-1)
	}
	rate := ""
	if el := t.Sub(b.start).Seconds(); el > 0 {
		rate = "  " + FormatSize(int64(float64(done)/el)) + "/s"
	}
	return fmt.Sprintf("[%s] %3.0f%%  %s / %s%s", bar, frac*100, FormatSize(done), FormatSize(b.total), rate)
}

// FormatSize writes n bytes in binary units: "512 B", "1.5 KiB", "4.0 GiB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
