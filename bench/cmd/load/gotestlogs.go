package main

// The two in-process scenarios, read from the `go test` logs run.sh passes in:
// the upstream economy over 24 simulated hours (-econ-log) and the
// micro-benchmarks (-micro-log).

import (
	"cmp"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var (
	econRe  = regexp.MustCompile(`ECONOMY names=(\d+) reads=(\d+) simulated=(\S+) calls_per_name_min=(\d+) calls_per_name_max=(\d+) bound=(\d+) expected=(\d+) refresh_grants=(\d+)`)
	benchRe = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)
)

// inProcess adds the rows of the in-process scenarios whose logs were given.
func (d *driver) inProcess() {
	if d.cfg.econLog != "" {
		d.economy(d.cfg.econLog)
	}
	if d.cfg.microLog != "" {
		d.microBenchmarks(d.cfg.microLog)
	}
}

// economy adds the upstream-economy row from the ECONOMY line that
// TestUpstreamEconomy24h logs.
func (d *driver) economy(path string) {
	raw, err := os.ReadFile(path)
	switch m := econRe.FindStringSubmatch(string(raw)); {
	case err != nil:
		d.broken("4. upstream economy", err)
	case m == nil:
		d.broken("4. upstream economy", fmt.Errorf("no ECONOMY line in %s (test failed to run?): %s", path, lastLines(string(raw), 5)))
	default:
		lo, _ := strconv.Atoi(m[4])
		hi, _ := strconv.Atoi(m[5])
		bound, _ := strconv.Atoi(m[6])
		expect, _ := strconv.Atoi(m[7])
		pass := strings.Contains(string(raw), "--- PASS: TestUpstreamEconomy24h")
		d.add("4. upstream calls per name over 24 h simulated (100 names, 1 h tokens, refresh_ahead 5 min)",
			fmt.Sprintf("%s–%s (at least %d expected: 1 mint + a refresh every 55–56¼ min, the pass's per-name jitter included; %s reads)", m[4], m[5], expect, m[2]),
			fmt.Sprintf("≤ ceil(86400/3300)+1 = %d", bound), pass && hi <= bound && lo >= expect)
	}
}

// microBenchmarks adds the micro-benchmark rows and their table from
// `go test -bench -benchmem` output.
func (d *driver) microBenchmarks(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		d.broken("6. micro-benchmarks", err)
		return
	}
	var lines []string
	type result struct {
		ns            float64
		bytes, allocs string
	}
	bm := map[string]result{}
	for _, l := range strings.Split(string(raw), "\n") {
		m := benchRe.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		bm[m[1]] = result{v, cmp.Or(m[4], "?"), cmp.Or(m[5], "?")}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s |", m[1], m[3], cmp.Or(m[4], "–"), cmp.Or(m[5], "–")))
	}
	if len(lines) == 0 {
		d.broken("6. micro-benchmarks", fmt.Errorf("no benchmark lines in %s: %s", path, lastLines(string(raw), 5)))
		return
	}
	for _, v := range []string{"serial", "parallel"} {
		c, o := bm["BenchmarkCredsReadCached/"+v], bm["BenchmarkNoopReadInProcess/"+v]
		if c.ns > 0 && o.ns > 0 {
			d.info("6. in-process cached creds read through HandleRequest ("+v+")",
				fmt.Sprintf("%.0f ns/op, %s B/op, %s allocs/op; a constant-map handler: %.0f ns/op, %s B/op, %s allocs/op",
					c.ns, c.bytes, c.allocs, o.ns, o.bytes, o.allocs), "")
		}
	}
	d.note("### Figure 6: in-process micro-benchmarks (`go test -bench -benchmem`)\n\n| benchmark | ns/op | B/op | allocs/op |\n|---|---|---|---|\n%s",
		strings.Join(lines, "\n"))
}

// lastLines joins the last n lines of s, to quote a log in one line.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], " | ")
}
