package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// latencies are request latencies; q and summary want them sorted.
type latencies []time.Duration

func (l latencies) sorted() latencies {
	s := slices.Clone(l)
	slices.Sort(s)
	return s
}

// q is the p-quantile (0 < p ≤ 1) by the nearest-rank method, 0 for none.
func (l latencies) q(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(l))))
	return l[min(max(rank, 1), len(l))-1]
}

func (l latencies) summary() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s", msec(l.q(.5)), msec(l.q(.99)), msec(l.q(1)))
}

// msec formats d in milliseconds.
func msec(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// perSec formats a rate.
func perSec(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
}
