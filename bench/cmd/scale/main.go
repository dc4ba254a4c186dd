// Command scale is the driver of `make bench-scale` (bench/scale.sh): it
// measures tokenbroker with many chains in one mount, on a single-node Vault
// with integrated (raft) storage, and writes the "Scale" section of
// bench/results.md.
//
// It starts the Vault server itself (`vault server -config` with storage
// "raft", loopback only), initialises and unseals it, registers the plugin by
// sha256 and mounts it at tokenbroker/, and runs the fake provider in-process
// behind a counting reverse proxy (which can also play a provider capped at
// some requests a second). Then, by phase (-only):
//
//	write    write -names configs through the HTTP API (always runs: the others need it);
//	         with -apps, one app/<-app> and -names connections config/<name> app=<-app>
//	read     first read of every name; plugin RSS
//	steady   readers at -rate on random names for -duration; waits, expired
//	         tokens served, upstream calls against the minimum, bursts
//	restart  plugin reload: first reads from storage, the call rate after it
//	list     LIST config/ a page (-list-limit) at a time
//	rotate   (-apps) readers read -rotate-names connections in a loop while the
//	         app's client_secret is rotated at the provider and in Vault, until
//	         every one of them was renewed after it; then the next read of
//	         every name (lost chains)
//	capped   the same as steady with the provider capped (-cap) and settings' rate_limit
//
// -token-size makes the fake issue JWT-like access tokens of that many bytes
// (real providers' are often 1-2 KB); -dialect picks the fake's dialect
// (echo360 refreshes without the client secret, oauth2 sends it on every
// grant). The plugin's VmRSS is sampled every 200 ms through each phase, and
// each phase's peak is reported beside the value at its end.
//
// Every phase is bounded in time, every request goes to 127.0.0.1, and Vault
// (with its plugin processes) is stopped on the way out, also on SIGINT or
// SIGTERM. scale.sh owns the work directory and removes it.
//
// The files: main.go (flags, orchestration), server.go (the Vault server),
// api.go (its HTTP API), upstream.go (the fake provider and the counting
// proxy), probe.go (plugin process memory, the plugin's metrics), one file a
// phase (bulk.go: write and read; steady.go: steady and capped; restart.go;
// list.go; rotate.go), peak.go (the RSS sampler), stats.go and report.go (the results table and section).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// phases, in the order they run.
// The restart follows the steady run, so it starts from chains kept fresh; the
// capped run, which leaves tokens expired behind a provider too slow for
// them, comes last.
var phases = []string{"write", "read", "steady", "restart", "list", "rotate", "capped"}

// config is what the flags say.
type config struct {
	vaultBin, pluginBin, pluginVersion string
	workDir, outPath                   string
	only                               map[string]bool

	names        int
	duration     time.Duration // of each steady run
	lifetime     time.Duration // of the fake's tokens
	refreshAhead time.Duration // written with each config; 0: the plugin's default
	readRate     float64       // steady reads a second
	capRate      int           // the capped provider's requests a second
	writers      int
	readers      int // first reads in parallel
	restartReads int
	restartConc  int
	settle       time.Duration // watched before the reload
	listLimit    int
	bulkTimeout  time.Duration // bound of the write and the first-read phases
	seed         uint64

	apps        bool   // one app and N connections of it, not N configs
	app         string // the app's name
	dialect     string // the fake's dialect the configs or the app use
	tokenSize   int    // bytes of the fake's access tokens; 0: its short default
	rotateNames int    // rotate: connections read in a loop
	rotateConc  int    // rotate: readers
	rotateRate  float64
	pluginEnv   []string // KEY=VALUE pairs the plugin is registered with

	command, revision string
	strict            bool
}

func parseFlags() (config, error) {
	var c config
	var only string
	flag.StringVar(&c.vaultBin, "vault", ".cache/bin/vault", "the Vault binary")
	flag.StringVar(&c.pluginBin, "plugin", "bin/vault-plugin-secrets-tokenbroker", "the plugin binary (copied into Vault's plugin directory)")
	flag.StringVar(&c.pluginVersion, "plugin-version", "", "the version the plugin reports, to register it with (\"\": unversioned)")
	flag.StringVar(&c.workDir, "work", "", "an empty directory for Vault's config, data, plugins and log (required)")
	flag.StringVar(&c.outPath, "out", "bench/results.md", "results file: its \"## Scale\" section is replaced, the rest kept")
	flag.StringVar(&only, "only", strings.Join(phases, ","), "phases to run (write always runs)")
	flag.IntVar(&c.names, "names", 100_000, "N: configs written")
	flag.DurationVar(&c.duration, "duration", 20*time.Minute, "D: length of each steady run (steady, capped)")
	flag.DurationVar(&c.lifetime, "lifetime", 10*time.Minute, "L: access token lifetime the fake provider issues")
	flag.DurationVar(&c.refreshAhead, "refresh-ahead", 0, "refresh_ahead written with each config (0: the plugin's default)")
	flag.Float64Var(&c.readRate, "rate", 50, "steady reads a second, each of a random name")
	flag.IntVar(&c.capRate, "cap", 100, "capped: the provider answers 429 above this many requests a second")
	flag.IntVar(&c.writers, "writers", 32, "write: concurrent writers")
	flag.IntVar(&c.readers, "readers", 32, "read: concurrent first readers")
	flag.IntVar(&c.restartReads, "restart-reads", 1000, "restart: distinct random names read right after the reload")
	flag.IntVar(&c.restartConc, "restart-conc", 4, "restart: concurrent readers after the reload")
	flag.DurationVar(&c.settle, "settle", time.Minute, "restart: provider calls watched before the reload (the baseline)")
	flag.IntVar(&c.listLimit, "list-limit", 1000, "list: page size")
	flag.DurationVar(&c.bulkTimeout, "bulk-timeout", 30*time.Minute, "bound of the write and the first-read phases each")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the random name choices")
	flag.BoolVar(&c.apps, "apps", false, "write one app and N connections of it (config/<name> app=<app>) instead of N self-contained configs")
	flag.StringVar(&c.app, "app", "scale", "the app's name (-apps)")
	flag.StringVar(&c.dialect, "dialect", "echo360", "the fake's dialect the configs (or the app) use: echo360 (refreshes without the secret) or oauth2 (the secret on every grant)")
	flag.IntVar(&c.tokenSize, "token-size", 0, "bytes of the access tokens the fake issues, JWT-like (0: its short default of 46 bytes)")
	flag.IntVar(&c.rotateNames, "rotate-names", 50, "rotate: connections read in a loop across the rotation")
	flag.IntVar(&c.rotateConc, "rotate-conc", 4, "rotate: concurrent readers")
	flag.Float64Var(&c.rotateRate, "rotate-rate", 200, "rotate: reads a second, all readers together")
	flag.Func("plugin-env", "KEY=VALUE the plugin process gets (vault plugin register -env; repeatable), e.g. TOKENBROKER_MEMORY_LIMIT=300MiB", func(kv string) error {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("want KEY=VALUE")
		}
		c.pluginEnv = append(c.pluginEnv, kv)
		return nil
	})
	flag.StringVar(&c.command, "command", "make bench-scale", "the command, for the results file")
	flag.StringVar(&c.revision, "revision", "", "the plugin's source revision, for the results file")
	flag.BoolVar(&c.strict, "strict", false, "exit 1 when a target is missed")
	flag.Parse()

	c.only = map[string]bool{"write": true}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		if p != "" && !slices.Contains(phases, p) {
			return c, fmt.Errorf("-only: unknown phase %q (phases: %s)", p, strings.Join(phases, ","))
		}
		c.only[p] = true
	}
	switch {
	case c.workDir == "":
		return c, fmt.Errorf("-work is required")
	case c.names < 1 || c.duration <= 0 || c.lifetime < 2*time.Second || c.readRate <= 0 || c.capRate < 1:
		return c, fmt.Errorf("-names, -duration, -rate and -cap must be positive, -lifetime at least 2s")
	case c.writers < 1 || c.readers < 1 || c.restartConc < 1 || c.listLimit < 1:
		return c, fmt.Errorf("-writers, -readers, -restart-conc and -list-limit must be at least 1")
	case c.dialect != "echo360" && c.dialect != "oauth2":
		return c, fmt.Errorf("-dialect: echo360 or oauth2")
	case c.tokenSize < 0 || c.rotateNames < 1 || c.rotateConc < 1 || c.rotateRate <= 0:
		return c, fmt.Errorf("-token-size must be >= 0, -rotate-names, -rotate-conc and -rotate-rate positive")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// scale.sh stops the driver through this file; should scale.sh itself
	// be gone, the driver stops by itself (orphaned: its parent changed).
	pidFile := filepath.Join(cfg.workDir, "driver.pid")
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600)
	ctx, orphaned := context.WithCancel(ctx)
	go watchParent(ctx, orphaned)
	d := &driver{cfg: cfg, rep: &report{}, rng: rand.New(rand.NewPCG(cfg.seed, 0x5ca1e)), start: time.Now()}
	code := d.run(ctx)
	_ = os.Remove(pidFile)
	os.Exit(code)
}

// watchParent calls orphaned when this process's parent changes.
func watchParent(ctx context.Context, orphaned context.CancelFunc) {
	parent := os.Getppid()
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		if os.Getppid() != parent {
			logf("the parent process is gone: stopping")
			orphaned()
			return
		}
	}
}

// driver holds what the phases share.
type driver struct {
	cfg   config
	rep   *report
	rng   *rand.Rand // used by one goroutine at a time
	start time.Time

	up  *upstream
	srv *server
	api *api // the Vault under test, root token

	window   time.Duration // the refresh window: min(refresh_ahead, L/2)
	vaultV   string
	written  bool // every config was written
	mountAt  time.Time
	rssMount int      // the plugin's VmRSS (KiB) right after the mount
	mem      []string // memory at points of the run, for the notes
	peaks    *peakSampler
	phasePk  map[string]phasePeak // by phase
	rssRead  int                  // the plugin's VmRSS (KiB) right after the first reads
	raftSize map[string]int64     // bytes of raft's data directory after a phase
}

// name is the i-th config's name; they sort in index order.
func name(i int) string { return fmt.Sprintf("s%06d", i) }

// run sets up, runs the selected phases, writes the results and returns the
// exit code.
func (d *driver) run(ctx context.Context) (code int) {
	var err error
	if d.up, err = startUpstream(d.cfg.lifetime, fakeprovider.Dialect(d.cfg.dialect), d.cfg.tokenSize); err != nil {
		logf("fake provider: %v", err)
		return 1
	}
	defer d.up.close()
	logf("starting a single-node raft Vault in %s", d.cfg.workDir)
	d.srv, err = startServer(ctx, d.cfg)
	if d.srv != nil {
		defer d.srv.stop()
	}
	if err != nil {
		logf("Vault: %v", err)
		return 1
	}
	d.mountAt = time.Now()
	d.vaultV = d.srv.version(ctx)
	d.api = newAPI(d.srv.addr, d.srv.token, max(d.cfg.writers, d.cfg.readers, d.cfg.restartConc, 64))
	logf("%s at %s, plugin mounted at tokenbroker/; provider (via the counting proxy) at %s", d.vaultV, d.srv.addr, d.up.url)
	st, _ := d.remember(ctx, "right after the mount")
	d.rssMount = st.rssKiB
	// The sampler reads the server's process: it stops before the server
	// does (defers run last first), or it would find the process gone.
	peaksCtx, stopPeaks := context.WithCancel(ctx)
	peaksDone := make(chan struct{})
	d.peaks = newPeakSampler(d)
	go func() { defer close(peaksDone); d.peaks.run(peaksCtx) }()
	defer func() { stopPeaks(); <-peaksDone }()

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"write", d.writePhase},
		{"read", d.readPhase},
		{"steady", d.steadyPhase},
		{"restart", d.restartPhase},
		{"list", d.listPhase},
		{"rotate", d.rotatePhase},
		{"capped", d.cappedPhase},
	}
	for _, s := range steps {
		if !d.cfg.only[s.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if s.name != "write" && !d.written {
			d.rep.broken(s.name, fmt.Errorf("skipped: the configs were not all written"))
			continue
		}
		logf("%s (t+%s)", s.name, time.Since(d.start).Round(time.Second))
		d.peaks.begin()
		err := s.fn(ctx)
		d.phasePeak(ctx, s.name)
		if err != nil {
			d.rep.broken(s.name, err)
		}
	}
	d.perName()
	if ctx.Err() != nil {
		logf("interrupted: %s left as it was", d.cfg.outPath)
		d.rep.print()
		return 130
	}
	if err := replaceSection(d.cfg.outPath, d.section()); err != nil {
		logf("writing %s: %v", d.cfg.outPath, err)
		return 1
	}
	d.rep.print()
	logf("Scale section written to %s", d.cfg.outPath)
	if d.cfg.strict && d.rep.fails > 0 {
		return 1
	}
	return 0
}

// logf logs a progress line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}
