package main

// The steady runs: readers at -rate on random names for -duration with
// tokens of lifetime L, against a provider that answers everything (3) and
// against one capped at -cap requests a second, with the mount's rate_limit
// set to the same (6).

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// slowRead is the fallback's threshold: a read slower than this is counted
// as one that waited for the provider when the plugin has no metrics path.
const slowRead = 50 * time.Millisecond

// readLog is what a set of creds reads saw.
type readLog struct {
	mu                                  sync.Mutex
	reads, errs, expired, slow, skipped int
	firstErr                            error
	expiredExample                      string
	lat                                 latencies
}

// readCreds reads name i and logs its latency, and whether it failed or
// served a token that had already expired (expires_at_seconds ≤ now).
func (d *driver) readCreds(ctx context.Context, i int, log *readLog) {
	r, err := d.api.ok(ctx, "GET", mount+"/creds/"+name(i), nil)
	now := time.Now()
	var exp int64
	if err == nil {
		exp, err = r.credsExpiry()
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	log.reads++
	log.lat = append(log.lat, r.took)
	if r.took > slowRead {
		log.slow++
	}
	switch {
	case err != nil:
		log.errs++
		if log.firstErr == nil {
			log.firstErr = err
		}
	case exp <= now.Unix():
		log.expired++
		if log.expiredExample == "" {
			log.expiredExample = fmt.Sprintf("%s expired at %s, served at %s", name(i),
				time.Unix(exp, 0).UTC().Format(time.TimeOnly), now.UTC().Format("15:04:05.000"))
		}
	}
}

// failures describes the failed reads, or is "".
func (l *readLog) failures() string {
	if l.errs == 0 {
		return ""
	}
	return fmt.Sprintf("; %d failed (first: %s)", l.errs, oneLine(l.firstErr.Error()))
}

// steadyReads reads a random name every 1/-rate seconds for dur, with at
// most 64 reads in flight (a tick finding 64 is skipped and counted).
func (d *driver) steadyReads(ctx context.Context, dur time.Duration) *readLog {
	log := &readLog{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / d.cfg.readRate))
	defer tick.Stop()
	end := time.NewTimer(dur)
	defer end.Stop()
	inflight := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
		case <-end.C:
		case <-tick.C:
			select {
			case inflight <- struct{}{}:
				i := d.rng.IntN(d.cfg.names)
				wg.Go(func() {
					defer func() { <-inflight }()
					d.readCreds(ctx, i, log)
				})
			default:
				log.mu.Lock()
				log.skipped++
				log.mu.Unlock()
			}
			continue
		}
		break
	}
	wg.Wait()
	log.lat = log.lat.sorted()
	return log
}

// waits is the number of reads that waited for the provider between two
// scrapes of the plugin's metrics, or the slow reads when there are none.
type waits struct {
	count  int
	source string
}

// steadyRun runs the readers for -duration and reports the figures of one
// run: fig is its number in the table, capped says whether the provider is
// capped (then the call-rate rows are for information and 429s are counted).
func (d *driver) steadyRun(ctx context.Context, fig string, capped bool) error {
	n, dur, life := d.cfg.names, d.cfg.duration, d.cfg.lifetime
	w0, known0, scrape0, err0 := d.waitedReads(ctx)
	before, logBefore := d.up.now(), d.srv.logSize()
	log := d.steadyReads(ctx, dur)
	after, logAfter := d.up.now(), d.srv.logSize()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	w1, known1, scrape1, err1 := d.waitedReads(ctx)
	t := d.up.between(before, after)

	var w waits
	switch {
	case err0 == nil && err1 == nil && known0 && known1:
		w = waits{int(w1 - w0), `tokenbroker_creds_reads_total{result="waited"} summed, its increase over the run`}
		d.rep.note("%s: the two scrapes of %s/metrics (before and after) took %s and %s with %d names.", fig, mount, msec(scrape0), msec(scrape1), n)
	case err0 == nil && err1 == nil:
		w = waits{log.slow, fmt.Sprintf("%s/metrics does not exist yet: reads slower than %s counted instead", mount, slowRead)}
	default:
		w = waits{log.slow, fmt.Sprintf("scraping %s/metrics failed (%v): reads slower than %s counted instead", mount, firstErr(err0, err1), slowRead)}
	}
	lead := fmt.Sprintf("%s. %d names, %s tokens, %s:", fig, n, life, dur)
	if capped {
		lead = fmt.Sprintf("%s. provider capped at %d/s, %d names, %s tokens, %s:", fig, d.cfg.capRate, n, life, dur)
	}

	d.rep.check(lead+" reads at "+fmt.Sprintf("%.0f/s", d.cfg.readRate), "0 failed, 0 skipped", log.errs == 0 && log.skipped == 0,
		"%d reads (%s; %s; %d slower than %s; %d skipped, readers saturated)%s", log.reads, log.lat.summary(), perSec(log.reads, dur),
		log.slow, slowRead, log.skipped, log.failures())
	d.rep.check(lead+" reads that waited for the provider", "0", w.count == 0, "%d (%s)", w.count, w.source)
	d.rep.check(lead+" expired tokens served", "0", log.expired == 0, "%d of %d reads%s", log.expired, log.reads, example(log.expiredExample))

	minimum := float64(n) * dur.Seconds() / (life - d.window).Seconds()
	ratio := float64(t.calls) / minimum
	calls := fmt.Sprintf("%d (%.2f× the minimum N×D/(L−W) = %d×%s/%s = %.0f; %d answered 429, %d not answered)",
		t.calls, ratio, n, dur, life-d.window, minimum, t.rejected, t.failed)
	burst := fmt.Sprintf("%d in the busiest second, %.0f s into the run (%.2f× the mean %.1f/s)", t.busiest, t.busiestAt.Seconds(), float64(t.busiest)/max(t.mean(), 1e-9), t.mean())
	if capped {
		d.rep.info(lead+" upstream calls", "%s", calls)
		d.rep.info(lead+" provider's busiest second", "%s", burst)
		d.rep.check(lead+" HTTP 429 seen by the plugin", "0", t.rejected == 0, "%d (%.1f%% of %d calls; cap %d/s, burst %d)",
			t.rejected, 100*float64(t.rejected)/max(float64(t.calls), 1), t.calls, d.cfg.capRate, d.cfg.capRate)
	} else {
		d.rep.check(lead+" upstream calls vs the minimum", "≤ 1.05× the minimum", ratio <= 1.05, "%s", calls)
		d.rep.check(lead+" provider's busiest second vs the mean rate", "≤ 1.5× the mean", float64(t.busiest) <= 1.5*t.mean(), "%s", burst)
	}
	st, desc := d.remember(ctx, "after run "+fig)
	d.rep.check(lead+" plugin RSS after the run", "< 250 MiB", st.rssKiB > 0 && st.rssKiB < rssTarget, "%s", desc)
	d.rep.note("%s: the run began %s after the mount (Vault calls the plugin's periodic function about once a minute from the mount on). "+
		"Provider calls a second, a minute at a time (mean/busiest): %s. Vault's log grew %.1f MiB (%.0f bytes a provider call).",
		fig, before.at.Sub(d.mountAt).Round(time.Second), bySpan(d.up.perSecond(before, after), 60),
		float64(logAfter-logBefore)/(1<<20), float64(logAfter-logBefore)/max(float64(t.calls), 1))
	return nil
}

func example(s string) string {
	if s == "" {
		return ""
	}
	return "; e.g. " + s
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// bySpan summarises per-second counts width seconds at a time, as
// "mean/busiest" a second.
func bySpan(secs []int, width int) string {
	var parts []string
	for len(secs) > 0 {
		m := secs[:min(width, len(secs))]
		secs = secs[len(m):]
		sum, top := 0, 0
		for _, c := range m {
			sum += c
			top = max(top, c)
		}
		parts = append(parts, fmt.Sprintf("%.0f/%d", float64(sum)/float64(len(m)), top))
	}
	return strings.Join(parts, ", ")
}

func (d *driver) steadyPhase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.duration+10*time.Minute)
	defer cancel()
	return d.steadyRun(ctx, "3", false)
}

// cappedPhase caps the provider and sets the mount's rate_limit to the cap
// (recorded as not available when the plugin has no such setting), runs the
// readers, and lifts both again.
func (d *driver) cappedPhase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.duration+10*time.Minute)
	defer cancel()
	limited, desc := d.setRateLimit(ctx, d.cfg.capRate)
	d.rep.info(fmt.Sprintf("6. vault write %s/settings rate_limit=%d rate_limit_burst=%d", mount, d.cfg.capRate, capBurst(d.cfg.capRate)), "%s", desc)
	d.up.capAt(d.cfg.capRate)
	defer d.up.capAt(0)
	if limited {
		defer func() {
			if ok, desc := d.setRateLimit(context.Background(), 0); !ok {
				logf("lifting rate_limit: %s", desc)
			}
		}()
	}
	need := float64(d.cfg.names) / (d.cfg.lifetime - d.window).Seconds()
	floor := float64(d.cfg.names) / d.cfg.lifetime.Seconds()
	verdict := ""
	if floor > float64(d.cfg.capRate) {
		verdict = " With N/L above the cap no client can keep every token valid: expired tokens are then the provider's doing."
	}
	d.rep.note("6: keeping %d chains of %s tokens fresh takes N/(L−W) = %.1f requests/s at the plugin's refresh window, "+
		"and N/L = %.1f/s at the very least (one call a lifetime); the provider allows %d/s.%s",
		d.cfg.names, d.cfg.lifetime, need, floor, d.cfg.capRate, verdict)
	return d.steadyRun(ctx, "6", true)
}

// capBurst is the burst the capped run allows: a tenth of the rate, so the
// calls the plugin releases together cannot arrive bunched above the
// provider's own bucket of the same rate.
func capBurst(perSecond int) int { return max(1, perSecond/10) }

// setRateLimit writes rate_limit (perSecond; 0 lifts the limit) and
// rate_limit_burst (capBurst) and reports whether the plugin took them.
func (d *driver) setRateLimit(ctx context.Context, perSecond int) (bool, string) {
	r, err := d.api.do(ctx, "PUT", mount+"/settings", map[string]any{"rate_limit": perSecond, "rate_limit_burst": capBurst(perSecond)})
	if err != nil {
		return false, "not available: " + err.Error()
	}
	if r.status != http.StatusOK && r.status != http.StatusNoContent {
		return false, fmt.Sprintf("not available: HTTP %d: %s", r.status, oneLine(string(r.body)))
	}
	var v struct {
		Data     map[string]any `json:"data"`
		Warnings []string       `json:"warnings"`
	}
	_ = r.decode(&v)
	if _, ok := v.Data["rate_limit"]; !ok {
		return false, fmt.Sprintf("not available: the write was accepted but settings has no rate_limit field (warnings: %s)", oneLine(strings.Join(v.Warnings, "; ")))
	}
	return true, fmt.Sprintf("written; settings now rate_limit=%v rate_limit_burst=%v", v.Data["rate_limit"], v.Data["rate_limit_burst"])
}
