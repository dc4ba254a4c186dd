package tokenbroker

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// MemoryLimitEnv names the environment variable that sets the plugin
// process's soft memory limit (runtime/debug.SetMemoryLimit): a size such as
// "400MiB", "1GiB" or a number of bytes, or "off". Give it to the plugin with
// `vault plugin register -env TOKENBROKER_MEMORY_LIMIT=...`.
//
// Under a bulk load (many config writes or first reads at once) most of
// what the heap holds at its peak is garbage of the requests, not what the
// names keep; with the limit the collector runs more often as the heap
// nears it, and returns freed memory to the OS sooner, so the process's RSS
// peak stays near the limit instead of at GOGC's multiple of the live heap.
// It is soft: live data above it is kept (the collector then runs often,
// at a CPU cost, bounded by the Go runtime to about half the CPU).
// GOMEMLIMIT, the Go runtime's own variable, wins when both are set.
const MemoryLimitEnv = "TOKENBROKER_MEMORY_LIMIT"

// ApplyMemoryLimit sets the soft memory limit that getenv's
// TOKENBROKER_MEMORY_LIMIT names, unless GOMEMLIMIT is set. It returns the
// limit set in bytes, or 0 when it set none.
func ApplyMemoryLimit(getenv func(string) string) (int64, error) {
	raw := strings.TrimSpace(getenv(MemoryLimitEnv))
	if raw == "" || getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, err := parseMemoryLimit(raw)
	if err != nil || limit == 0 {
		return 0, err
	}
	debug.SetMemoryLimit(limit)
	return limit, nil
}

// parseMemoryLimit reads a size: digits with an optional unit (B, KiB, MiB,
// GiB, TiB; KB, MB, GB, TB as powers of 1000), or "off" (0).
func parseMemoryLimit(s string) (int64, error) {
	if strings.EqualFold(s, "off") {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s=%q: want a size such as 400MiB or 1GiB, or off", MemoryLimitEnv, s)
	case n <= 0:
		return 0, fmt.Errorf("%s=%q: the size must be positive", MemoryLimitEnv, s)
	case n > math.MaxInt64/mult:
		return 0, fmt.Errorf("%s=%q: too large", MemoryLimitEnv, s)
	}
	return n * mult, nil
}
