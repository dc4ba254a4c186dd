package main

// The slow-provider scenario: reads never wait on the provider. A token with a
// 2 s provider behind it enters its refresh window while readers keep reading
// it; their latency must not show the refresh, and the refresh must be one
// upstream call.

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// windowSample is one read of the slow-provider scenario.
type windowSample struct {
	at  time.Time
	lat time.Duration
	tok string
	err bool
}

func (d *driver) window() error {
	const (
		lifetime     = 40 * time.Second
		refreshAhead = 15 * time.Second
		latency      = 2 * time.Second
		readers      = 8
	)
	f, cleanup, err := d.scenarioProvider("window", lifetime, latency, refreshAhead)
	if err != nil {
		return err
	}
	defer cleanup()
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
	time.Sleep(time.Until(windowAt.Add(-3 * time.Second)))
	samples, newAt := d.readAcross(readers, first, windowAt.Add(12*time.Second))

	var lats []time.Duration
	var phase [3]time.Duration // max latency before the window, while the refresh was in flight, after it landed
	errs, during := 0, 0
	landed := time.Unix(0, newAt)
	for _, s := range samples {
		lats = append(lats, s.lat)
		if s.err {
			errs++
		}
		p := 0
		switch {
		case s.at.Before(windowAt):
		case newAt == 0 || s.at.Before(landed):
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
		"< 100 ms", mx < 100*time.Millisecond && errs == 0 && newAt != 0 && during > 0)
	landedIn := "never (no new token served before the deadline)"
	if newAt != 0 {
		landedIn = fmt.Sprintf("new token first served %.1f s after the window opened", landed.Sub(windowAt).Seconds())
	}
	d.add("2. upstream calls for that transition",
		fmt.Sprintf("%d (%d refresh grant; %s)", calls, refreshes, landedIn), "exactly 1", calls == 1 && refreshes == 1)
	return nil
}

// readAcross runs readers clients reading creds/window back to back until
// hardStop, or until 3 s after a token other than first was served. It
// returns every read and when the new token was first served (unix nanos,
// 0 for never).
func (d *driver) readAcross(readers int, first string, hardStop time.Time) ([]windowSample, int64) {
	var (
		mu      sync.Mutex
		samples []windowSample
		newAt   atomic.Int64 // unix nanos when a new token was first served
		wg      sync.WaitGroup
	)
	hc := d.client(readers * 2).hc
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []windowSample
			for {
				now := time.Now()
				if n := newAt.Load(); now.After(hardStop) || (n != 0 && now.Sub(time.Unix(0, n)) > 3*time.Second) {
					break
				}
				req, _ := http.NewRequest("GET", d.cfg.addr+"/v1/tokenbroker/creds/window", nil)
				req.Header.Set("X-Vault-Token", d.cfg.token)
				resp, err := hc.Do(req)
				s := windowSample{at: now}
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
	return samples, newAt.Load()
}
