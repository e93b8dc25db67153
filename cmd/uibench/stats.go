package main

import (
	"fmt"
	"math"
	"time"
)

// millis renders d in milliseconds with one decimal.
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// fromMillis converts a JavaScript time in milliseconds (a
// DOMHighResTimeStamp) to a Duration, to the microsecond.
func fromMillis(ms float64) time.Duration {
	return time.Duration(math.Round(ms*1000)) * time.Microsecond
}

// clockOffset estimates how far the page's clock (epoch milliseconds,
// performance.timeOrigin + performance.now()) is ahead of this program's,
// from readings taken between before and after: the reading is assumed
// to be at the midpoint, within half the round trip (returned as the
// error bound). Of several readings, the one with the shortest round
// trip is the best.
func clockOffset(before, after time.Time, pageMS float64) (offset, bound time.Duration) {
	mid := before.Add(after.Sub(before) / 2)
	page := time.UnixMicro(int64(math.Round(pageMS * 1000)))
	return page.Sub(mid), after.Sub(before) / 2
}
