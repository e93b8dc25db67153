package main

import (
	"bufio"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// unknown marks a duration that was not measured.
const unknown = time.Duration(math.MinInt64)

// seconds renders d in seconds with two decimals, "-" when unknown.
func seconds(d time.Duration) string {
	if d == unknown {
		return "-"
	}
	return fmt.Sprintf("%.2f", d.Seconds())
}

// perHour is n studies in d as studies per hour (0 when d is not positive).
func perHour(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Hours()
}

// metricValue returns the value of the sample of name without labels in
// a Prometheus text exposition; false when it is not there.
func metricValue(text, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != name {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
}
