package main

// The stampede scenario: 1000 concurrent reads of one name whose token is
// gone (evicted, or expired) must make exactly one upstream call.

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// stampedeOnce fires n concurrent reads of path, all released at once, and
// returns how many failed, the distinct tokens served and the latencies.
func (d *driver) stampedeOnce(path string, n int) (failed int, tokens map[string]int, lats []time.Duration, firstErr string) {
	vc := d.client(n + 10)
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
			status, raw, err := vc.call("GET", path, nil)
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

	// First a 1 h token, evicted with DELETE creds/<name>.
	f, cleanup, err := d.scenarioProvider("stampede", time.Hour, latency, 5*time.Minute)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := d.vault.must("GET", "tokenbroker/creds/stampede", nil); err != nil {
		return err
	}
	if _, err := d.vault.must("DELETE", "tokenbroker/creds/stampede", nil); err != nil {
		return err
	}
	before := f.TotalCalls()
	failed, tokens, lats, firstErr := d.stampedeOnce("tokenbroker/creds/stampede", n)
	calls := f.TotalCalls() - before
	d.add("3. stampede, 1 h token evicted: upstream calls for 1000 concurrent reads",
		fmt.Sprintf("%d (%d refresh grant; %d distinct token(s) served; read p50 %s, max %s)", calls, f.Grants("refresh_token"), len(tokens), ms(pct(lats, .5)), ms(pct(lats, 1))),
		"exactly 1", calls == 1)
	d.add("3. stampede, 1 h token evicted: failed reads", failedText(failed, firstErr), "0", failed == 0)

	// Then a 5 s token, left to expire. The refresh scheduler would renew it
	// before it expires, so the provider refuses with 500 meanwhile (the
	// background backs off for 30 s or more); the stampede then meets an
	// expired token and a provider that answers again.
	f5, cleanup5, err := d.scenarioProvider("stampede5", 5*time.Second, latency, 5*time.Minute)
	if err != nil {
		return err
	}
	defer cleanup5()
	raw, err := d.vault.must("GET", "tokenbroker/creds/stampede5", nil)
	if err != nil {
		return err
	}
	dd, _ := data(raw)
	exp, _ := dd["expires_at_seconds"].(float64)
	f5.Fail(1000, fakeprovider.Fail500)
	time.Sleep(time.Until(time.Unix(int64(exp)+1, 0).Add(200 * time.Millisecond))) // surely expired
	f5.ClearFailures()
	primed := f5.TotalCalls()
	failed, tokens, lats, firstErr = d.stampedeOnce("tokenbroker/creds/stampede5", n)
	calls = f5.TotalCalls() - primed
	d.add("3. stampede, 5 s token expired: upstream calls for 1000 concurrent reads",
		fmt.Sprintf("%d (%d distinct token(s) served; read p50 %s, max %s)", calls, len(tokens), ms(pct(lats, .5)), ms(pct(lats, 1))),
		"exactly 1", calls == 1)
	d.add("3. stampede, 5 s token expired: failed reads", failedText(failed, firstErr), "0", failed == 0)
	return d.stampedeNarrowed(n, latency)
}

// stampedeNarrowed: n concurrent reads of a narrowed variant no one read
// yet (scope=read of a config whose main token is cached) make one
// upstream call (variants.go's single flight per variant).
func (d *driver) stampedeNarrowed(n int, latency time.Duration) error {
	f, err := newFake(time.Hour, latency)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := d.vault.must("PUT", "tokenbroker/config/stampede-narrowed", narrowedConfigBody(f, 5*time.Minute)); err != nil {
		return err
	}
	defer d.forget("stampede-narrowed")
	if _, err := d.vault.must("GET", "tokenbroker/creds/stampede-narrowed", nil); err != nil {
		return err
	}
	before := f.TotalCalls()
	failed, tokens, lats, firstErr := d.stampedeOnce("tokenbroker/creds/stampede-narrowed?scope=read", n)
	calls := f.TotalCalls() - before
	d.add("3. stampede, a new narrowed variant (scope=read): upstream calls for 1000 concurrent reads",
		fmt.Sprintf("%d (%d distinct token(s) served; read p50 %s, max %s)", calls, len(tokens), ms(pct(lats, .5)), ms(pct(lats, 1))),
		"exactly 1", calls == 1)
	d.add("3. stampede, a new narrowed variant: failed reads", failedText(failed, firstErr), "0", failed == 0)
	return nil
}

// failedText is the failed-reads value: the count and the first error.
func failedText(n int, first string) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (first: %s)", n, oneLine(first))
}
