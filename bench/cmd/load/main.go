// Command load is the driver of `make bench` (bench/run.sh): it measures
// tokenbroker inside a real Vault dev server over loopback HTTP and writes the
// results table, bench/results.md. It runs four scenarios against Vault (the
// cached-read throughput, reads across the refresh window of a slow provider,
// the stampede and the scale scenario) and adds two in-process ones from the
// `go test` logs run.sh passes in (the 24 h upstream economy and the
// micro-benchmarks).
//
// run.sh starts the Vault server, registers and mounts the plugins
// (tokenbroker at tokenbroker/, the no-op floor at noop/) and then runs this
// program, which runs its own fake providers in-process (one per scenario, so
// every upstream count is the scenario's own), writes the configs, and drives
// Vault's HTTP API with keep-alive clients. Every loop here is bounded in
// count and in time.
//
// The files: main.go (flags, orchestration), vault.go (the Vault HTTP client),
// fake.go (the fake providers), periodic.go (locating Vault's periodic passes),
// one file a scenario (throughput.go, slowprovider.go, stampede.go, scale.go,
// gotestlogs.go), stats.go and procstat.go (their measuring helpers) and
// report.go (the results table).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// config is what the flags say; main fills it once and the driver only reads it.
type config struct {
	addr, token string
	pluginBin   string // the tokenbroker plugin binary Vault runs
	outPath     string
	scenarios   map[string]bool // -only

	// The cached-read throughput scenario.
	duration, slice, gap time.Duration
	reps                 int
	conc                 string // comma-separated; parsed by the scenario, which reports a bad value

	// The scale scenario.
	scaleN     int
	scaleLife  time.Duration
	passBudget time.Duration

	// Inputs and labels for the results file.
	econLog, microLog, vaultLog string
	vaultVer, command, revision string
	strict                      bool
}

func parseFlags() config {
	var c config
	var only string
	flag.StringVar(&c.addr, "addr", "", "Vault address (http://127.0.0.1:port)")
	flag.StringVar(&c.token, "token", "", "Vault root token")
	flag.StringVar(&c.pluginBin, "plugin-bin", "", "path of the tokenbroker plugin binary Vault runs (to find its process)")
	flag.StringVar(&c.outPath, "out", "bench/results.md", "results file")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "cached-read throughput: time per target per repetition")
	flag.DurationVar(&c.slice, "slice", 500*time.Millisecond, "cached-read throughput: targets alternate every slice within a repetition")
	flag.DurationVar(&c.gap, "gap", 100*time.Millisecond, "cached-read throughput: idle time before each slice")
	flag.IntVar(&c.reps, "reps", 8, "cached-read throughput: repetitions")
	flag.StringVar(&c.conc, "conc", "1,16,64", "cached-read throughput: concurrency levels")
	flag.IntVar(&c.scaleN, "scale", 10000, "scale: number of configs")
	flag.StringVar(&only, "only", "throughput,window,stampede,scale", "scenarios to run")
	flag.StringVar(&c.econLog, "econ-log", "", "`go test -v -run TestUpstreamEconomy24h` output (upstream economy)")
	flag.StringVar(&c.microLog, "micro-log", "", "`go test -bench -benchmem` output (micro-benchmarks)")
	flag.StringVar(&c.vaultVer, "vault-version", "", "`vault version` output")
	flag.StringVar(&c.command, "command", "make bench", "the command, for the results file")
	flag.StringVar(&c.revision, "revision", "", "the plugin's source revision (git describe), for the results file")
	flag.BoolVar(&c.strict, "strict", false, "exit 1 when a target is missed")
	flag.DurationVar(&c.scaleLife, "scale-lifetime", 20*time.Second, "scale: token lifetime (refresh_ahead is half of it)")
	flag.StringVar(&c.vaultLog, "vault-log", "", "Vault's log file (to quote what it says about periodic passes)")
	flag.DurationVar(&c.passBudget, "pass-observe", 100*time.Second, "scale: longest time to watch one background pass")
	flag.Parse()
	c.scenarios = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		c.scenarios[strings.TrimSpace(s)] = true
	}
	return c
}

func main() {
	cfg := parseFlags()
	if cfg.addr == "" || cfg.token == "" {
		fmt.Fprintln(os.Stderr, "load: -addr and -token are required")
		os.Exit(2)
	}
	d := &driver{
		cfg:   cfg,
		vault: newVaultClient(cfg.addr, cfg.token, 2000),
		start: time.Now(),
	}
	os.Exit(d.run())
}

// driver runs the scenarios and collects their results.
type driver struct {
	cfg   config
	vault *vaultClient
	start time.Time
	rows  []row
	notes []string // detail sections, markdown
	fails int
	// ticker is the sentinel: a 4 s token that every periodic pass refreshes,
	// so its upstream calls mark when Vault ran the pass (periodic.go).
	ticker *fake
}

// run runs the selected scenarios, writes the results file and returns the
// exit code.
func (d *driver) run() int {
	logf("load driver against %s", d.cfg.addr)
	if err := d.startSentinel(); err != nil {
		logf("sentinel fake: %v", err)
		return 1
	}
	defer d.ticker.Close()

	d.inProcess()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"throughput", d.throughput},
		{"window", d.window},
		{"stampede", d.stampede},
		{"scale", d.scale},
	}
	for _, s := range steps {
		if !d.cfg.scenarios[s.name] {
			continue
		}
		logf("%s (t+%s)", s.name, time.Since(d.start).Round(time.Second))
		if err := s.fn(); err != nil {
			d.broken(s.name, err)
		}
	}
	d.tickNote()
	if err := d.write(); err != nil {
		logf("writing %s: %v", d.cfg.outPath, err)
		return 1
	}
	if d.cfg.strict && d.fails > 0 {
		return 1
	}
	return 0
}
