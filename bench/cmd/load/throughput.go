package main

// The cached-read throughput scenario: closed-loop reads of a cached creds
// token (of a config whose provider keeps every token, of one whose
// renewal ends the token served: revokes_previous_token, and a cached
// narrowed read: scope=read, one variant of its config), against reads of
// the no-op external plugin (the floor any external plugin pays) and of a
// KV-v2 secret of the same data.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// target is one path the scenario reads.
type target struct{ name, path string }

// throughputTargets are the paths compared, by name.
func throughputTargets() []target {
	return []target{
		{"creds", "tokenbroker/creds/bench"},
		{"creds-ending", "tokenbroker/creds/bench-ending"},
		{"creds-narrowed", "tokenbroker/creds/bench-narrowed?scope=read"},
		{"noop", "noop/noop/bench"},
		{"kv", "secret/data/bench"},
	}
}

// concTarget keys the runs of one target at one concurrency.
type concTarget struct {
	conc   int
	target string
}

// runResult is what closed-loop runs of one target measured.
type runResult struct {
	n, errs int
	elapsed time.Duration
	lat     []time.Duration // sorted
}

func (r runResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (d *driver) throughput() error {
	f, cleanup, err := d.scenarioProvider("bench", time.Hour, 0, 5*time.Minute)
	if err != nil {
		return err
	}
	defer cleanup()
	ending := configBody(f, 5*time.Minute)
	ending["revokes_previous_token"] = "on_new_token"
	if _, err := d.vault.must("PUT", "tokenbroker/config/bench-ending", ending); err != nil {
		return err
	}
	defer d.forget("bench-ending")
	if _, err := d.vault.must("PUT", "tokenbroker/config/bench-narrowed", narrowedConfigBody(f, 5*time.Minute)); err != nil {
		return err
	}
	defer d.forget("bench-narrowed")
	sizes, err := d.primeTargets()
	if err != nil {
		return err
	}
	concs, err := parseConc(d.cfg.conc)
	if err != nil {
		return err
	}
	callsBefore := f.TotalCalls()
	results, raws := d.measureThroughput(concs)
	detail := d.addThroughputRows(concs, results)
	if n := f.TotalCalls() - callsBefore; n != 0 {
		d.add("1. upstream calls during the cached-read runs", strconv.Itoa(n), "0", false)
	}
	d.note("### Figure 1: cached read throughput\n\nClosed-loop clients, one keep-alive connection each; each repetition gives every target %s, "+
		"in %s slices alternating between the targets (cycling through all their orders, %s idle before each slice); %d repetitions. "+
		"Ratios are the median of the per-repetition ratios, with their spread (min–max). "+
		"creds-ending reads a config with revokes_previous_token=on_new_token (its token outside the refresh window); "+
		"creds-narrowed is a cached narrowed read (scope=read, a variant of an oauth2 config). "+
		"p50/p99 are medians over repetitions, max is the largest of all. Response sizes: %s. "+
		"The load generator runs on the same machine as Vault and the plugins.\n\n%s\n\nEvery measurement:\n\n"+
		"| concurrency | rep | target | requests in time | req/s | p50 | p99 | max | errors |\n|---|---|---|---|---|---|---|---|---|\n%s",
		d.cfg.duration, d.cfg.slice, d.cfg.gap, d.cfg.reps, strings.Join(sizes, ", "), strings.Join(detail, "\n"), strings.Join(raws, "\n"))
	return nil
}

// primeTargets mints the creds token, writes the KV secret with exactly the
// creds response's data, reads every target once and returns their
// response sizes.
func (d *driver) primeTargets() ([]string, error) {
	raw, err := d.vault.must("GET", "tokenbroker/creds/bench", nil)
	if err != nil {
		return nil, err
	}
	creds, err := data(raw)
	if err != nil {
		return nil, err
	}
	if _, err := d.vault.must("PUT", "secret/data/bench", map[string]any{"data": creds}); err != nil {
		return nil, err
	}
	var sizes []string
	for _, t := range throughputTargets() {
		raw, err := d.vault.must("GET", t.path, nil)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", t.name, err)
		}
		sizes = append(sizes, fmt.Sprintf("%s %d B", t.name, len(raw)))
	}
	return sizes, nil
}

// parseConc parses the -conc list of concurrency levels.
func parseConc(s string) ([]int, error) {
	var concs []int
	for _, f := range strings.Split(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return nil, fmt.Errorf("bad -conc %q", s)
		}
		concs = append(concs, c)
	}
	return concs, nil
}

// measureThroughput runs -reps repetitions at each concurrency and returns
// the runs by concurrency and target, and a table row for each run.
func (d *driver) measureThroughput(concs []int) (map[concTarget][]runResult, []string) {
	targets := throughputTargets()
	perms := permutations(targets)
	hc := d.client(2 * slices.Max(concs)).hc

	// Warm up every target (connections, Vault's and the plugin's caches).
	for _, t := range targets {
		closedLoop(hc, d.vault.addr+"/v1/"+t.path, d.cfg.token, slices.Max(concs), time.Second)
	}

	results := map[concTarget][]runResult{}
	var raws []string
	for _, c := range concs {
		for rep := range d.cfg.reps {
			acc := d.repetition(hc, c, rep, perms)
			var parts []string
			for _, t := range targets {
				r := *acc[t.name]
				slices.Sort(r.lat)
				results[concTarget{c, t.name}] = append(results[concTarget{c, t.name}], r)
				parts = append(parts, fmt.Sprintf("%s %.0f/s", t.name, r.rate()))
				raws = append(raws, fmt.Sprintf("| %d | %d | %s | %d | %.0f | %s | %s | %s | %d |",
					c, rep+1, t.name, r.n, r.rate(), ms(pct(r.lat, .5)), ms(pct(r.lat, .99)), ms(pct(r.lat, 1)), r.errs))
			}
			fmt.Fprintf(os.Stderr, "    c=%d rep %d: %s\n", c, rep+1, strings.Join(parts, ", "))
		}
	}
	return results, raws
}

// repetition gives each target -duration in all, as -slice long runs
// interleaved round-robin, in a changing order: on a shared machine the three
// targets then see the same background load. It returns the runs summed by
// target (latencies unsorted).
func (d *driver) repetition(hc *http.Client, conc, rep int, perms [][]target) map[string]*runResult {
	acc := map[string]*runResult{}
	for _, t := range throughputTargets() {
		acc[t.name] = &runResult{}
	}
	rounds := max(1, int(d.cfg.duration/d.cfg.slice))
	for round := range rounds {
		// Cycle through every order of the targets: a mere rotation
		// would have each target always follow the same one, and pay
		// for the garbage that one leaves in Vault.
		order := perms[(rep*rounds+round)%len(perms)]
		for _, t := range order {
			time.Sleep(d.cfg.gap) // let the previous slice's work settle
			r := closedLoop(hc, d.vault.addr+"/v1/"+t.path, d.cfg.token, conc, d.cfg.duration/time.Duration(rounds))
			a := acc[t.name]
			a.n, a.errs, a.elapsed, a.lat = a.n+r.n, a.errs+r.errs, a.elapsed+r.elapsed, append(a.lat, r.lat...)
		}
	}
	return acc
}

// addThroughputRows adds the results rows (creds/noop and noop/kv ratios at
// each concurrency) and returns the per-target summary table.
func (d *driver) addThroughputRows(concs []int, results map[concTarget][]runResult) []string {
	detail := []string{"| concurrency | target | req/s (median) | p50 | p99 | max | errors |", "|---|---|---|---|---|---|---|"}
	for _, c := range concs {
		var ratioCN, ratioEN, ratioNK, ratioWN, ratioWC []float64
		for rep := range d.cfg.reps {
			run := func(name string) runResult { return results[concTarget{c, name}][rep] }
			cr, er, wr, nr, kr := run("creds"), run("creds-ending"), run("creds-narrowed"), run("noop"), run("kv")
			ratioCN = append(ratioCN, cr.rate()/nr.rate())
			ratioEN = append(ratioEN, er.rate()/nr.rate())
			ratioWN = append(ratioWN, wr.rate()/nr.rate())
			ratioWC = append(ratioWC, wr.rate()/cr.rate())
			ratioNK = append(ratioNK, nr.rate()/kr.rate())
		}
		errs := 0
		rates := map[string]float64{}
		for _, t := range throughputTargets() {
			var r []float64
			var p50, p99 []time.Duration
			var mx time.Duration
			e := 0
			for _, x := range results[concTarget{c, t.name}] {
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
		cn, en, nk := median(ratioCN), median(ratioEN), median(ratioNK)
		d.add(fmt.Sprintf("1. cached read c=%d: creds/noop req/s", c),
			fmt.Sprintf("%.2f× (spread %s; per rep %s; creds %.0f/s, noop %.0f/s)", cn, spread(ratioCN), ratios(ratioCN), rates["creds"], rates["noop"]),
			"≥ 0.90×", cn >= 0.9 && errs == 0)
		d.add(fmt.Sprintf("1. cached read c=%d: creds-ending/noop req/s (revokes_previous_token)", c),
			fmt.Sprintf("%.2f× (spread %s; per rep %s; creds-ending %.0f/s)", en, spread(ratioEN), ratios(ratioEN), rates["creds-ending"]),
			"≥ 0.90×", en >= 0.9 && errs == 0)
		wn, wc := median(ratioWN), median(ratioWC)
		d.add(fmt.Sprintf("1. cached read c=%d: creds-narrowed/creds req/s (a cached narrowed read)", c),
			fmt.Sprintf("%.2f× (spread %s; per rep %s; creds-narrowed %.0f/s; creds-narrowed/noop %.2f×, spread %s)",
				wc, spread(ratioWC), ratios(ratioWC), rates["creds-narrowed"], wn, spread(ratioWN)),
			"≥ 0.90×", wc >= 0.9 && errs == 0)
		d.info(fmt.Sprintf("1. cached read c=%d: noop/kv req/s (the external-plugin floor)", c),
			fmt.Sprintf("%.2f× (spread %s; per rep %s; kv %.0f/s)", nk, spread(ratioNK), ratios(ratioNK), rates["kv"]), "known 0.39–0.61×")
	}
	return detail
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
