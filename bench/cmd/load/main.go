// Command load is the driver of `make bench` (bench/run.sh): it measures
// tokenbroker inside a real Vault dev server over loopback HTTP and writes the
// results table (issue 6, figures 1, 2, 3 and 5; figures 4 and 6 come from the
// `go test` logs run.sh passes in).
//
// run.sh starts the Vault server, registers and mounts the plugins
// (tokenbroker at tokenbroker/, the no-op floor at noop/) and then runs this
// program, which runs its own fake providers in-process (one per scenario, so
// every upstream count is the scenario's own), writes the configs, and drives
// Vault's HTTP API with keep-alive clients. Every loop here is bounded in
// count and in time.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

const (
	clientID     = "bench-client"
	clientSecret = "bench-client-secret"
)

var (
	addr       = flag.String("addr", "", "Vault address (http://127.0.0.1:port)")
	token      = flag.String("token", "", "Vault root token")
	pluginBin  = flag.String("plugin-bin", "", "path of the tokenbroker plugin binary Vault runs (to find its process)")
	outPath    = flag.String("out", "bench/results.md", "results file")
	duration   = flag.Duration("duration", 5*time.Second, "figure 1: time per target per repetition")
	slice      = flag.Duration("slice", 500*time.Millisecond, "figure 1: targets alternate every slice within a repetition")
	gap        = flag.Duration("gap", 100*time.Millisecond, "figure 1: idle time before each slice")
	reps       = flag.Int("reps", 3, "figure 1: repetitions")
	concFlag   = flag.String("conc", "1,16,64", "figure 1: concurrency levels")
	scaleN     = flag.Int("scale", 10000, "figure 5: number of configs")
	only       = flag.String("only", "throughput,window,stampede,scale", "scenarios to run")
	econLog    = flag.String("econ-log", "", "`go test -v -run TestUpstreamEconomy24h` output (figure 4)")
	microLog   = flag.String("micro-log", "", "`go test -bench -benchmem` output (figure 6)")
	vaultVer   = flag.String("vault-version", "", "`vault version` output")
	command    = flag.String("command", "make bench", "the command, for the results file")
	revision   = flag.String("revision", "", "the plugin's source revision (git describe), for the results file")
	strict     = flag.Bool("strict", false, "exit 1 when a target is missed")
	scaleLife  = flag.Duration("scale-lifetime", 20*time.Second, "figure 5: token lifetime (refresh_ahead is half of it)")
	vaultLog   = flag.String("vault-log", "", "Vault's log file (to quote what it says about periodic passes)")
	passBudget = flag.Duration("pass-observe", 100*time.Second, "figure 5: longest time to watch one background pass")
)

func main() {
	flag.Parse()
	if *addr == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "load: -addr and -token are required")
		os.Exit(2)
	}
	d := &driver{
		vault: newVaultClient(*addr, *token, 2000),
		start: time.Now(),
	}
	code := d.run()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Vault HTTP API

type vaultClient struct {
	addr, token string
	hc          *http.Client
}

func newVaultClient(addr, token string, conns int) *vaultClient {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &vaultClient{addr: strings.TrimRight(addr, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// call does one API request and returns the status and body.
func (v *vaultClient) call(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, v.addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Vault-Token", v.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// must does a request that has to succeed (2xx) and returns the body.
func (v *vaultClient) must(method, path string, body any) ([]byte, error) {
	status, raw, err := v.call(method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, status, bytes.TrimSpace(raw))
	}
	return raw, nil
}

// data returns the "data" object of a Vault response body.
func data(raw []byte) (map[string]any, error) {
	var r struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

func accessToken(raw []byte) string {
	var r struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	_ = json.Unmarshal(raw, &r)
	return r.Data.AccessToken
}

// ---------------------------------------------------------------------------
// Fake providers, with a timestamp per upstream call

type fake struct {
	*fakeprovider.Server
	mu    sync.Mutex
	times []time.Time
}

func newFake(lifetime, latency time.Duration) (*fake, error) {
	f := &fake{}
	f.Server = fakeprovider.New(fakeprovider.Options{
		TLS: true, Lifetime: lifetime, Latency: latency,
		Logf: func(format string, _ ...any) {
			if strings.Contains(format, "dialect=") { // one line per token request
				f.mu.Lock()
				f.times = append(f.times, time.Now())
				f.mu.Unlock()
			}
		},
	})
	f.AddClient(clientID, clientSecret)
	return f, f.Start()
}

// answered counts the token requests answered so far (TotalCalls counts them
// when they arrive, before the provider latency).
func (f *fake) answered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.times)
}

func (f *fake) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times)
}

// configure writes config/<name> against f.
func (d *driver) configure(name string, f *fake, refreshAhead time.Duration) error {
	_, err := d.vault.must("PUT", "tokenbroker/config/"+name, map[string]any{
		"provider":      "echo360",
		"token_url":     f.URL() + fakeprovider.Echo360.TokenPath(),
		"client_id":     clientID,
		"client_secret": clientSecret,
		"ca_pem":        f.CAPEM(),
		"refresh_ahead": int(refreshAhead / time.Second),
	})
	return err
}

// forget deletes a scenario's config once its fake provider is gone, so later
// periodic passes do not keep calling a closed port.
func (d *driver) forget(name string) {
	if _, err := d.vault.must("DELETE", "tokenbroker/config/"+name, nil); err != nil {
		logf("cleanup: %v", err)
	}
}

// ---------------------------------------------------------------------------
// The results table

type row struct {
	figure, value, target, verdict string
}

type driver struct {
	vault *vaultClient
	start time.Time
	rows  []row
	notes []string // detail sections, markdown
	fails int
	// ticker is the sentinel: a 4 s token that every periodic pass refreshes,
	// so its upstream calls mark when Vault ran the pass.
	ticker *fake
}

func (d *driver) add(figure, value, target string, ok bool) {
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
		d.fails++
	}
	d.rows = append(d.rows, row{figure, value, target, verdict})
	fmt.Fprintf(os.Stderr, "    %-4s %s: %s (target %s)\n", verdict, figure, value, target)
}

func (d *driver) info(figure, value, target string) {
	d.rows = append(d.rows, row{figure, value, target, "info"})
	fmt.Fprintf(os.Stderr, "    info %s: %s\n", figure, value)
}

func (d *driver) broken(figure string, err error) {
	d.rows = append(d.rows, row{figure, "not measured: " + oneLine(err.Error()), "", "ERROR"})
	d.fails++
	fmt.Fprintf(os.Stderr, "    ERROR %s: %v\n", figure, err)
}

func (d *driver) note(format string, args ...any) {
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}

func (d *driver) run() int {
	logf("load driver against %s", *addr)
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}

	var err error
	if d.ticker, err = newFake(4*time.Second, 0); err != nil {
		logf("sentinel fake: %v", err)
		return 1
	}
	defer d.ticker.Close()
	if err := d.configure("tick", d.ticker, time.Minute); err == nil {
		_, err = d.vault.must("GET", "tokenbroker/creds/tick", nil)
	}
	if err != nil {
		logf("sentinel config: %v (periodic passes will not be located)", err)
	}

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
		if !want[s.name] {
			continue
		}
		logf("%s (t+%s)", s.name, time.Since(d.start).Round(time.Second))
		if err := s.fn(); err != nil {
			d.broken(s.name, err)
		}
	}
	d.tickNote()
	if err := d.write(); err != nil {
		logf("writing %s: %v", *outPath, err)
		return 1
	}
	if *strict && d.fails > 0 {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// Figure 1: cached read throughput, creds vs the no-op floor vs KV-v2

type target struct{ name, path string }

type runResult struct {
	n, errs int
	elapsed time.Duration
	lat     []time.Duration // sorted
}

func (r runResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// closedLoop runs conc clients, each issuing GET url back to back on its own
// keep-alive connection, for d. The rate counts the requests completed within
// d over d (a request still in flight at the deadline is waited for, and its
// latency kept, but not counted), so a slow tail does not skew short runs.
func closedLoop(hc *http.Client, url, tok string, conc int, d time.Duration) runResult {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  []time.Duration
		n    int
		errs int
	)
	start := time.Now()
	deadline := start.Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("X-Vault-Token", tok)
			lat := make([]time.Duration, 0, 1<<14)
			bad, inTime := 0, 0
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				resp, err := hc.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				lat = append(lat, time.Since(t0))
				if err != nil {
					bad++
				}
				if time.Now().Before(deadline) {
					inTime++
				}
			}
			mu.Lock()
			all = append(all, lat...)
			n += inTime
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	return runResult{n: n, errs: errs, elapsed: d, lat: all}
}

// permutations returns every order of ts.
func permutations(ts []target) [][]target {
	if len(ts) <= 1 {
		return [][]target{slices.Clone(ts)}
	}
	var out [][]target
	for i := range ts {
		rest := append(slices.Clone(ts[:i]), ts[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]target{ts[i]}, p...))
		}
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(xs []time.Duration) time.Duration {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return time.Duration(median(f))
}

func (d *driver) throughput() error {
	f, err := newFake(time.Hour, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := d.configure("bench", f, 5*time.Minute); err != nil {
		return err
	}
	defer d.forget("bench")
	raw, err := d.vault.must("GET", "tokenbroker/creds/bench", nil)
	if err != nil {
		return err
	}
	creds, err := data(raw)
	if err != nil {
		return err
	}
	// The KV secret holds exactly the creds response's data.
	if _, err := d.vault.must("PUT", "secret/data/bench", map[string]any{"data": creds}); err != nil {
		return err
	}
	targets := []target{
		{"creds", "tokenbroker/creds/bench"},
		{"noop", "noop/noop/bench"},
		{"kv", "secret/data/bench"},
	}
	sizes := []string{}
	for _, t := range targets {
		raw, err := d.vault.must("GET", t.path, nil)
		if err != nil {
			return fmt.Errorf("target %s: %w", t.name, err)
		}
		sizes = append(sizes, fmt.Sprintf("%s %d B", t.name, len(raw)))
	}
	perms := permutations(targets)
	var concs []int
	for _, s := range strings.Split(*concFlag, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("bad -conc %q", *concFlag)
		}
		concs = append(concs, c)
	}
	callsBefore := f.TotalCalls()
	hc := newVaultClient(*addr, *token, 2*slices.Max(concs)).hc

	// Warm up every target (connections, Vault's and the plugin's caches).
	for _, t := range targets {
		closedLoop(hc, d.vault.addr+"/v1/"+t.path, *token, slices.Max(concs), time.Second)
	}

	type key struct {
		conc   int
		target string
	}
	results := map[key][]runResult{}
	var raws []string
	for _, c := range concs {
		for rep := range *reps {
			// A repetition gives each target -duration in all, as -slice long
			// runs interleaved round-robin, in a changing order: on a
			// shared machine the three targets then see the same background load.
			acc := map[string]*runResult{}
			for _, t := range targets {
				acc[t.name] = &runResult{}
			}
			rounds := max(1, int(*duration / *slice))
			for round := range rounds {
				// Cycle through every order of the targets: a mere rotation
				// would have each target always follow the same one, and pay
				// for the garbage that one leaves in Vault.
				order := perms[(rep*rounds+round)%len(perms)]
				for _, t := range order {
					time.Sleep(*gap) // let the previous slice's work settle
					r := closedLoop(hc, d.vault.addr+"/v1/"+t.path, *token, c, *duration/time.Duration(rounds))
					a := acc[t.name]
					a.n, a.errs, a.elapsed, a.lat = a.n+r.n, a.errs+r.errs, a.elapsed+r.elapsed, append(a.lat, r.lat...)
				}
			}
			var parts []string
			for _, t := range targets {
				r := *acc[t.name]
				slices.Sort(r.lat)
				results[key{c, t.name}] = append(results[key{c, t.name}], r)
				parts = append(parts, fmt.Sprintf("%s %.0f/s", t.name, r.rate()))
				raws = append(raws, fmt.Sprintf("| %d | %d | %s | %d | %.0f | %s | %s | %s | %d |",
					c, rep+1, t.name, r.n, r.rate(), ms(pct(r.lat, .5)), ms(pct(r.lat, .99)), ms(pct(r.lat, 1)), r.errs))
			}
			fmt.Fprintf(os.Stderr, "    c=%d rep %d: %s\n", c, rep+1, strings.Join(parts, ", "))
		}
	}

	var detail []string
	detail = append(detail, "| concurrency | target | req/s (median) | p50 | p99 | max | errors |", "|---|---|---|---|---|---|---|")
	for _, c := range concs {
		var ratioCN, ratioNK []float64
		for rep := range *reps {
			cr, nr, kr := results[key{c, "creds"}][rep], results[key{c, "noop"}][rep], results[key{c, "kv"}][rep]
			ratioCN = append(ratioCN, cr.rate()/nr.rate())
			ratioNK = append(ratioNK, nr.rate()/kr.rate())
		}
		errs := 0
		rates := map[string]float64{}
		for _, t := range targets {
			rs := results[key{c, t.name}]
			var r []float64
			var p50, p99 []time.Duration
			var mx time.Duration
			e := 0
			for _, x := range rs {
				r = append(r, x.rate())
				p50 = append(p50, pct(x.lat, .5))
				p99 = append(p99, pct(x.lat, .99))
				mx = max(mx, pct(x.lat, 1))
				e += x.errs
			}
			errs += e
			rates[t.name] = median(r)
			detail = append(detail, fmt.Sprintf("| %d | %s | %.0f | %s | %s | %s | %d |", c, t.name, median(r), ms(medianDur(p50)), ms(medianDur(p99)), ms(mx), e))
		}
		cn, nk := median(ratioCN), median(ratioNK)
		d.add(fmt.Sprintf("1. cached read c=%d: creds/noop req/s", c),
			fmt.Sprintf("%.2f× (per rep %s; creds %.0f/s, noop %.0f/s)", cn, ratios(ratioCN), rates["creds"], rates["noop"]),
			"≥ 0.90×", cn >= 0.9 && errs == 0)
		d.info(fmt.Sprintf("1. cached read c=%d: noop/kv req/s (the external-plugin floor)", c),
			fmt.Sprintf("%.2f× (per rep %s; kv %.0f/s)", nk, ratios(ratioNK), rates["kv"]), "known 0.39–0.61×")
	}
	if n := f.TotalCalls() - callsBefore; n != 0 {
		d.add("1. upstream calls during the cached-read runs", strconv.Itoa(n), "0", false)
	}
	d.note("### Figure 1: cached read throughput\n\nClosed-loop clients, one keep-alive connection each; each repetition gives every target %s, "+
		"in %s slices alternating between the three targets (cycling through all 6 orders, %s idle before each slice); %d repetitions. "+
		"Ratios are the median of the per-repetition ratios. "+
		"p50/p99 are medians over repetitions, max is the largest of all. Response sizes: %s. "+
		"The load generator runs on the same machine as Vault and the plugins.\n\n%s\n\nEvery measurement:\n\n"+
		"| concurrency | rep | target | requests in time | req/s | p50 | p99 | max | errors |\n|---|---|---|---|---|---|---|---|---|\n%s",
		*duration, *slice, *gap, *reps, strings.Join(sizes, ", "), strings.Join(detail, "\n"), strings.Join(raws, "\n"))
	return nil
}

func ratios(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(s, "/")
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// ---------------------------------------------------------------------------
// Figure 2: reads never wait on the provider

func (d *driver) window() error {
	const (
		lifetime     = 40 * time.Second
		refreshAhead = 15 * time.Second
		latency      = 2 * time.Second
		readers      = 8
	)
	f, err := newFake(lifetime, latency)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := d.configure("window", f, refreshAhead); err != nil {
		return err
	}
	defer d.forget("window")
	raw, err := d.vault.must("GET", "tokenbroker/creds/window", nil) // waits one 2 s mint
	if err != nil {
		return err
	}
	first := accessToken(raw)
	dd, _ := data(raw)
	exp, _ := dd["expires_at_seconds"].(float64)
	if first == "" || exp == 0 {
		return fmt.Errorf("priming read: unexpected response %s", raw)
	}
	// The backend's expiry is within [exp, exp+1) s; the window opens 15 s before it.
	windowAt := time.Unix(int64(exp), 0).Add(-refreshAhead)
	callsAtPrime := f.TotalCalls()
	startAt := windowAt.Add(-3 * time.Second)
	hardStop := windowAt.Add(12 * time.Second)
	time.Sleep(time.Until(startAt))

	type sample struct {
		at  time.Time
		lat time.Duration
		tok string
		err bool
	}
	var (
		mu      sync.Mutex
		samples []sample
		newAt   atomic.Int64 // unix nanos when a new token was first served
		wg      sync.WaitGroup
	)
	hc := newVaultClient(*addr, *token, readers*2).hc
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []sample
			for {
				now := time.Now()
				if n := newAt.Load(); now.After(hardStop) || (n != 0 && now.Sub(time.Unix(0, n)) > 3*time.Second) {
					break
				}
				req, _ := http.NewRequest("GET", *addr+"/v1/tokenbroker/creds/window", nil)
				req.Header.Set("X-Vault-Token", *token)
				resp, err := hc.Do(req)
				s := sample{at: now}
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					s.tok = accessToken(body)
					s.err = resp.StatusCode != http.StatusOK || s.tok == ""
				} else {
					s.err = true
				}
				s.lat = time.Since(now)
				if s.tok != "" && s.tok != first {
					newAt.CompareAndSwap(0, time.Now().UnixNano())
				}
				mine = append(mine, s)
			}
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()

	var lats []time.Duration
	var phase [3]time.Duration // max latency before the window, while the refresh was in flight, after it landed
	errs, during := 0, 0
	landed := time.Unix(0, newAt.Load())
	for _, s := range samples {
		lats = append(lats, s.lat)
		if s.err {
			errs++
		}
		p := 0
		switch {
		case s.at.Before(windowAt):
		case newAt.Load() == 0 || s.at.Before(landed):
			p = 1
			during++
		default:
			p = 2
		}
		phase[p] = max(phase[p], s.lat)
	}
	slices.Sort(lats)
	refreshes := f.Grants("refresh_token")
	calls := f.TotalCalls() - callsAtPrime
	mx := pct(lats, 1)
	d.add("2. max read latency across the refresh-window transition (8 readers, provider latency 2 s)",
		fmt.Sprintf("%s (max before the window %s, while the refresh was in flight %s, after %s; p50 %s, p99 %s; %d reads, %d while in flight, %d errors)",
			ms(mx), ms(phase[0]), ms(phase[1]), ms(phase[2]), ms(pct(lats, .5)), ms(pct(lats, .99)), len(lats), during, errs),
		"< 100 ms", mx < 100*time.Millisecond && errs == 0 && newAt.Load() != 0 && during > 0)
	landedIn := "never (no new token served before the deadline)"
	if newAt.Load() != 0 {
		landedIn = fmt.Sprintf("new token first served %.1f s after the window opened", landed.Sub(windowAt).Seconds())
	}
	d.add("2. upstream calls for that transition",
		fmt.Sprintf("%d (%d refresh grant; %s)", calls, refreshes, landedIn), "exactly 1", calls == 1 && refreshes == 1)
	return nil
}

// ---------------------------------------------------------------------------
// Figure 3: stampede

// stampedeOnce fires n concurrent reads of name, all released at once, and
// returns how many failed, the distinct tokens served and the latencies.
func stampedeOnce(name string, n int) (failed int, tokens map[string]int, lats []time.Duration, firstErr string) {
	vc := newVaultClient(*addr, *token, n+10)
	defer vc.hc.Transport.(*http.Transport).CloseIdleConnections()
	// Open the connections first (each client holds one while its warm-up
	// request is in flight), so the stampede itself measures Vault and the plugin.
	var warm sync.WaitGroup
	gate := make(chan struct{})
	for range n {
		warm.Add(1)
		go func() {
			defer warm.Done()
			<-gate
			_, _, _ = vc.call("GET", "sys/health", nil)
		}()
	}
	close(gate)
	warm.Wait()

	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	tokens = map[string]int{}
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			t0 := time.Now()
			status, raw, err := vc.call("GET", "tokenbroker/creds/"+name, nil)
			lat := time.Since(t0)
			tok := accessToken(raw)
			mu.Lock()
			defer mu.Unlock()
			lats = append(lats, lat)
			if err != nil || status != http.StatusOK || tok == "" {
				failed++
				if firstErr == "" {
					firstErr = fmt.Sprintf("HTTP %d %v %s", status, err, bytes.TrimSpace(raw))
				}
				return
			}
			tokens[tok]++
		}()
	}
	time.Sleep(50 * time.Millisecond) // let every goroutine reach the gate
	close(release)
	wg.Wait()
	slices.Sort(lats)
	return failed, tokens, lats, firstErr
}

func (d *driver) stampede() error {
	const n = 1000
	latency := 500 * time.Millisecond // so the stampede lands while the one call is in flight

	// 3a: a 1 h token evicted with DELETE creds/<name>.
	f, err := newFake(time.Hour, latency)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := d.configure("stampede", f, 5*time.Minute); err != nil {
		return err
	}
	defer d.forget("stampede")
	if _, err := d.vault.must("GET", "tokenbroker/creds/stampede", nil); err != nil {
		return err
	}
	if _, err := d.vault.must("DELETE", "tokenbroker/creds/stampede", nil); err != nil {
		return err
	}
	before := f.TotalCalls()
	failed, tokens, lats, firstErr := stampedeOnce("stampede", n)
	calls := f.TotalCalls() - before
	d.add("3. stampede, 1 h token evicted: upstream calls for 1000 concurrent reads",
		fmt.Sprintf("%d (%d refresh grant; %d distinct token(s) served; read p50 %s, max %s)", calls, f.Grants("refresh_token"), len(tokens), ms(pct(lats, .5)), ms(pct(lats, 1))),
		"exactly 1", calls == 1)
	d.add("3. stampede, 1 h token evicted: failed reads", failedText(failed, firstErr), "0", failed == 0)

	// 3b: a 5 s token left to expire. A periodic pass during the wait would
	// refresh it first (then the stampede would not meet an expired token), so
	// the attempt starts right after a pass and is retried if one interfered.
	f5, err := newFake(5*time.Second, latency)
	if err != nil {
		return err
	}
	defer f5.Close()
	if err := d.configure("stampede5", f5, 5*time.Minute); err != nil {
		return err
	}
	defer d.forget("stampede5")
	for attempt := 1; attempt <= 3; attempt++ {
		d.avoidTick(15 * time.Second)
		raw, err := d.vault.must("GET", "tokenbroker/creds/stampede5", nil)
		if err != nil {
			return err
		}
		primed := f5.TotalCalls()
		dd, _ := data(raw)
		exp, _ := dd["expires_at_seconds"].(float64)
		time.Sleep(time.Until(time.Unix(int64(exp)+1, 0).Add(200 * time.Millisecond))) // surely expired
		if f5.TotalCalls() != primed {
			logf("stampede5 attempt %d: a periodic pass refreshed the token during the wait; retrying", attempt)
			continue
		}
		failed, tokens, lats, firstErr := stampedeOnce("stampede5", n)
		calls := f5.TotalCalls() - primed
		d.add("3. stampede, 5 s token expired: upstream calls for 1000 concurrent reads",
			fmt.Sprintf("%d (%d distinct token(s) served; read p50 %s, max %s; attempt %d)", calls, len(tokens), ms(pct(lats, .5)), ms(pct(lats, 1)), attempt),
			"exactly 1", calls == 1)
		d.add("3. stampede, 5 s token expired: failed reads", failedText(failed, firstErr), "0", failed == 0)
		return nil
	}
	return errors.New("5 s stampede: a periodic pass refreshed the token in every attempt")
}

func failedText(n int, first string) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (first: %s)", n, oneLine(first))
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ---------------------------------------------------------------------------
// Periodic passes, located by the sentinel's upstream calls

// ticks returns the observed pass times (the sentinel's calls after priming).
func (d *driver) ticks() []time.Time {
	if d.ticker == nil {
		return nil
	}
	t := d.ticker.callTimes()
	if len(t) > 0 {
		t = t[1:] // the priming read
	}
	return t
}

// nextTick predicts the next pass from the last one seen and Vault's 1 min period.
func (d *driver) nextTick() (time.Time, bool) {
	t := d.ticks()
	if len(t) == 0 {
		return time.Time{}, false
	}
	next := t[len(t)-1]
	for !next.After(time.Now()) {
		next = next.Add(time.Minute)
	}
	return next, true
}

// avoidTick waits, when the next pass is less than need away, until just
// after it (at most 70 s).
func (d *driver) avoidTick(need time.Duration) {
	next, ok := d.nextTick()
	if !ok || time.Until(next) >= need {
		return
	}
	seen := len(d.ticks())
	deadline := time.Now().Add(70 * time.Second)
	logf("waiting %.0f s for the next periodic pass to go by", time.Until(next).Seconds())
	for len(d.ticks()) == seen && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
}

func (d *driver) tickNote() {
	t := d.ticks()
	if len(t) < 2 {
		d.note("### Periodic passes\n\n%d periodic passes observed (sentinel config `tick`, 4 s tokens).", len(t))
		return
	}
	var gaps []string
	for i := 1; i < len(t); i++ {
		gaps = append(gaps, fmt.Sprintf("%.1f", t[i].Sub(t[i-1]).Seconds()))
	}
	d.note("### Periodic passes\n\n%d passes observed through the sentinel config `tick` (4 s tokens, refreshed by every pass "+
		"when it reaches the name, in list order, so a long pass over the scale-* names delays it); seconds between them: %s.", len(t), strings.Join(gaps, ", "))
}

// ---------------------------------------------------------------------------
// Figure 5: scale

// pluginPIDs finds the processes running the tokenbroker plugin binary.
func pluginPIDs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	want, _ := filepath.Abs(*pluginBin)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(raw), "\x00")
		if argv0 == want || (want == "" && strings.HasSuffix(argv0, "/vault-plugin-secrets-tokenbroker")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

type procStat struct {
	rssKiB, hwmKiB, fds int
}

func (p procStat) String() string {
	return fmt.Sprintf("RSS %.1f MiB (peak %.1f MiB), %d open fds", float64(p.rssKiB)/1024, float64(p.hwmKiB)/1024, p.fds)
}

func pluginStat() (procStat, error) {
	pids := pluginPIDs()
	if len(pids) != 1 {
		return procStat{}, fmt.Errorf("found %d tokenbroker plugin processes (%v) for %s", len(pids), pids, *pluginBin)
	}
	var st procStat
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pids[0]))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			st.rssKiB = n
		case "VmHWM":
			st.hwmKiB = n
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pids[0]))
	st.fds = len(fds)
	return st, nil
}

// parallel runs fn(i) for i in [0, n) on workers goroutines, stopping early at
// the deadline; it returns how many ran, the errors and the first error.
func parallel(n, workers int, deadline time.Time, fn func(i int) error) (done, errs int, first error) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || time.Now().After(deadline) {
					return
				}
				err := fn(i)
				mu.Lock()
				done++
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return done, errs, first
}

func (d *driver) scale() error {
	n := *scaleN
	lifetime := *scaleLife
	refreshAhead := lifetime / 2
	f, err := newFake(lifetime, 50*time.Millisecond)
	if err != nil {
		return err
	}
	defer f.Close()
	name := func(i int) string { return fmt.Sprintf("scale-%05d", i) }
	vc := newVaultClient(*addr, *token, 128)
	body := map[string]any{
		"provider": "echo360", "token_url": f.URL() + fakeprovider.Echo360.TokenPath(),
		"client_id": clientID, "client_secret": clientSecret, "ca_pem": f.CAPEM(),
		"refresh_ahead": int(refreshAhead / time.Second),
	}

	t0 := time.Now()
	done, errs, first := parallel(n, 16, t0.Add(3*time.Minute), func(i int) error {
		_, err := vc.must("PUT", "tokenbroker/config/"+name(i), body)
		return err
	})
	writeTime := time.Since(t0)
	if done != n || errs != 0 {
		return fmt.Errorf("writing %d configs: %d written in %s, %d errors (first: %v)", n, done, writeTime, errs, first)
	}
	d.info(fmt.Sprintf("5. write %d configs through Vault (16 writers)", n),
		fmt.Sprintf("%.1f s (%.0f writes/s)", writeTime.Seconds(), float64(n)/writeTime.Seconds()), "")

	var listTimes []time.Duration
	listed := 0
	for range 3 {
		t := time.Now()
		raw, err := vc.must("LIST", "tokenbroker/config", nil)
		listTimes = append(listTimes, time.Since(t))
		if err != nil {
			return err
		}
		var r struct {
			Data struct {
				Keys []string `json:"keys"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		listed = 0
		for _, k := range r.Data.Keys {
			if strings.HasPrefix(k, "scale-") {
				listed++
			}
		}
	}
	slices.Sort(listTimes)
	d.add(fmt.Sprintf("5. LIST config/ of %d names through Vault", n),
		fmt.Sprintf("%s (slowest of 3; fastest %s; %d names listed)", ms(listTimes[2]), ms(listTimes[0]), listed),
		"< 1 s", listTimes[2] < time.Second && listed == n)

	stWritten, err := pluginStat()
	if err != nil {
		return err
	}

	// Start the reads right after a periodic pass, so every token minted
	// below is inside its refresh window (or expired) when the next pass
	// comes, and that pass has all n names to refresh.
	d.avoidTick(55 * time.Second)
	t0 = time.Now()
	done, errs, first = parallel(n, 64, t0.Add(3*time.Minute), func(i int) error {
		_, err := vc.must("GET", "tokenbroker/creds/"+name(i), nil)
		return err
	})
	readTime := time.Since(t0)
	if done != n || errs != 0 {
		return fmt.Errorf("reading %d names: %d read in %s, %d errors (first: %v)", n, done, readTime, errs, first)
	}
	readsDone := time.Now()
	mints := f.answered()
	d.info(fmt.Sprintf("5. first read of all %d names (64 readers, provider latency 50 ms: one mint each)", n),
		fmt.Sprintf("%.1f s (%.0f mints/s, %d upstream calls)", readTime.Seconds(), float64(n)/readTime.Seconds(), mints), "")
	stRead, err := pluginStat()
	if err != nil {
		return err
	}
	d.add(fmt.Sprintf("5. plugin process after reading all %d names once", n), stRead.String(), "RSS < 100 MiB", stRead.rssKiB < 100*1024)

	// The background pass: wait for its first refresh, then watch it until
	// every name is refreshed, or nothing happened for 10 s (the pass ended
	// or was cut short), or -pass-observe is up. Times are when the fake
	// answered (each call takes the 50 ms latency plus the round trip).
	waitUntil := readsDone.Add(refreshAhead + 75*time.Second)
	for time.Now().Before(waitUntil) && f.answered() == mints {
		time.Sleep(100 * time.Millisecond)
	}
	if f.answered() == mints {
		d.add("5. background pass over all names", fmt.Sprintf("no refresh seen within %.0f s of the reads", time.Since(readsDone).Seconds()), "≤ 60 s", false)
		return nil
	}
	passStart := f.callTimes()[mints]
	lastProgress, lastCount := time.Now(), f.answered()
	observeUntil := passStart.Add(*passBudget)
	for time.Now().Before(observeUntil) && lastCount-mints < n {
		time.Sleep(200 * time.Millisecond)
		if c := f.answered(); c != lastCount {
			lastProgress, lastCount = time.Now(), c
		} else if time.Since(lastProgress) > 10*time.Second {
			break
		}
	}
	times := f.callTimes()
	refreshed := len(times) - mints
	passEnd := times[len(times)-1]
	wall := passEnd.Sub(passStart)
	stPass, err := pluginStat()
	if err != nil {
		return err
	}
	rate := float64(refreshed) / max(wall.Seconds(), 0.001)
	var value string
	if refreshed >= n {
		value = fmt.Sprintf("%.1f s for %d refreshes (%.0f/s)", wall.Seconds(), refreshed, rate)
	} else {
		value = fmt.Sprintf("unfinished: %d of %d refreshed in %.1f s (%.0f/s; all %d would take ≈ %.0f s)",
			refreshed, n, wall.Seconds(), rate, n, float64(n)/rate)
	}
	d.add(fmt.Sprintf("5. background pass wall time, %d names due, provider latency 50 ms", n), value,
		"≤ 60 s (one pass interval)", refreshed >= n && wall <= time.Minute)
	d.add("5. plugin process after the background pass", stPass.String(), "RSS < 100 MiB", stPass.rssKiB < 100*1024)
	cut := ""
	if raw, err := os.ReadFile(*vaultLog); err == nil {
		if k := strings.Count(string(raw), "error rolling back: path=tokenbroker/"); k > 0 {
			cut = fmt.Sprintf(" Vault's log shows %d periodic pass(es) of tokenbroker/ cut short (\"error rolling back: path=tokenbroker/ … context deadline exceeded\"): "+
				"Vault gives a rollback request, which runs the pass, at most 90 s (DefaultMaxRequestDuration).", k)
		}
	}
	d.note("### Figure 5: scale\n\n%d configs (Echo360 dialect, one fake provider, token lifetime %s, refresh_ahead %s). "+
		"Plugin process: after the config writes %s; after the first read of every name %s; after the background pass %s. "+
		"The pass is located by the fake provider's call log: it started %.1f s after the reads ended.%s",
		n, lifetime, refreshAhead, stWritten, stRead, stPass, passStart.Sub(readsDone).Seconds(), cut)
	return nil
}

// ---------------------------------------------------------------------------
// Figures 4 and 6 from the go test logs

var (
	econRe  = regexp.MustCompile(`ECONOMY names=(\d+) reads=(\d+) simulated=(\S+) calls_per_name_min=(\d+) calls_per_name_max=(\d+) bound=(\d+) expected=(\d+) refresh_grants=(\d+)`)
	benchRe = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)
)

func (d *driver) inProcess() {
	if *econLog != "" {
		raw, err := os.ReadFile(*econLog)
		switch m := econRe.FindStringSubmatch(string(raw)); {
		case err != nil:
			d.broken("4. upstream economy", err)
		case m == nil:
			d.broken("4. upstream economy", fmt.Errorf("no ECONOMY line in %s (test failed to run?): %s", *econLog, lastLines(string(raw), 5)))
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
	if *microLog != "" {
		raw, err := os.ReadFile(*microLog)
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
			d.broken("6. micro-benchmarks", fmt.Errorf("no benchmark lines in %s: %s", *microLog, lastLines(string(raw), 5)))
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
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], " | ")
}

// ---------------------------------------------------------------------------
// Output

func machine() string {
	model := "unknown"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		if k, v, ok := strings.Cut(strings.SplitN(string(raw), "\n", 2)[0], ":"); ok && k == "MemTotal" {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/1024/1024)
		}
	}
	return fmt.Sprintf("%d CPUs (nproc), %s%s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

func (d *driver) write() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# tokenbroker benchmark results\n\n")
	fmt.Fprintf(&b, "Generated by `%s` (bench/run.sh → bench/cmd/load). Every figure is a ratio or a count from this one run; "+
		"the machine is shared and noisy, so absolute rates vary between runs.\n\n", *command)
	fmt.Fprintf(&b, "- Date: %s\n", d.start.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- Machine: %s\n", machine())
	fmt.Fprintf(&b, "- Vault: %s (dev server, in-memory storage, loopback HTTP)\n", cmp.Or(strings.TrimSpace(*vaultVer), "unknown"))
	fmt.Fprintf(&b, "- Plugin source: %s\n", cmp.Or(*revision, "unknown"))
	fmt.Fprintf(&b, "- Go: %s; driver run time %s\n\n", runtime.Version(), time.Since(d.start).Round(time.Second))
	fmt.Fprintf(&b, "| figure | value | target | result |\n|---|---|---|---|\n")
	for _, r := range d.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.figure, esc(r.value), cmp.Or(r.target, "–"), r.verdict)
	}
	for _, n := range d.notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	out := b.String()
	fmt.Println()
	printTable(d.rows)
	return os.WriteFile(*outPath, []byte(out), 0o644)
}

func esc(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// printTable prints the summary as an aligned plain-text table.
func printTable(rows []row) {
	w := [4]int{len("figure"), len("value"), len("target"), len("result")}
	for _, r := range rows {
		for i, c := range []string{r.figure, r.value, r.target, r.verdict} {
			w[i] = max(w[i], utf8.RuneCountInString(c))
		}
	}
	line := func(c ...string) {
		var b strings.Builder
		for i, s := range c {
			b.WriteString(s)
			if i < len(c)-1 {
				b.WriteString(strings.Repeat(" ", w[i]-utf8.RuneCountInString(s)+2))
			}
		}
		fmt.Println(b.String())
	}
	line("figure", "value", "target", "result")
	for _, r := range rows {
		line(r.figure, r.value, r.target, r.verdict)
	}
}
