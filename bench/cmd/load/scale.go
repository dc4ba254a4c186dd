package main

// The scale scenario: -scale configs written through Vault, a LIST of them,
// the plugin process's memory after one read of every name, and the wall time
// of the background pass that refreshes them all.

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const scaleLatency = 50 * time.Millisecond // the fake provider's, per token request

func scaleName(i int) string { return fmt.Sprintf("scale-%05d", i) }

func (d *driver) scale() error {
	n := d.cfg.scaleN
	lifetime := d.cfg.scaleLife
	refreshAhead := lifetime / 2
	f, err := newFake(lifetime, scaleLatency)
	if err != nil {
		return err
	}
	defer f.Close()
	vc := d.client(128)
	if err := d.scaleWrite(vc, f, n, refreshAhead); err != nil {
		return err
	}
	stWritten, err := pluginStat(d.cfg.pluginBin)
	if err != nil {
		return err
	}
	readsDone, mints, err := d.scaleRead(vc, f, n)
	if err != nil {
		return err
	}
	stRead, err := pluginStat(d.cfg.pluginBin)
	if err != nil {
		return err
	}
	d.add(fmt.Sprintf("5. plugin process after reading all %d names once", n), stRead.String(), "RSS < 100 MiB", stRead.rssKiB < 100*1024)

	// The background pass: wait for its first refresh, then watch it until
	// every name is refreshed, or nothing happened for 10 s (the pass ended
	// or was cut short), or -pass-observe is up. Times are when the fake
	// answered (each call takes the provider latency plus the round trip).
	waitUntil := readsDone.Add(refreshAhead + 75*time.Second)
	for time.Now().Before(waitUntil) && f.answered() == mints {
		time.Sleep(100 * time.Millisecond)
	}
	if f.answered() == mints {
		d.add("5. background pass over all names", fmt.Sprintf("no refresh seen within %.0f s of the reads", time.Since(readsDone).Seconds()), "≤ 60 s", false)
		return nil
	}
	passStart := f.callTimes()[mints]
	d.watchPass(f, mints+n, passStart.Add(d.cfg.passBudget))
	times := f.callTimes()
	refreshed := len(times) - mints
	wall := times[len(times)-1].Sub(passStart)
	stPass, err := pluginStat(d.cfg.pluginBin)
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
	d.note("### Figure 5: scale\n\n%d configs (Echo360 dialect, one fake provider, token lifetime %s, refresh_ahead %s). "+
		"Plugin process: after the config writes %s; after the first read of every name %s; after the background pass %s. "+
		"The pass is located by the fake provider's call log: it started %.1f s after the reads ended.%s",
		n, lifetime, refreshAhead, stWritten, stRead, stPass, passStart.Sub(readsDone).Seconds(), d.passesCutShort())
	return nil
}

// scaleWrite writes the n configs (16 writers) and times a LIST of them.
func (d *driver) scaleWrite(vc *vaultClient, f *fake, n int, refreshAhead time.Duration) error {
	body := configBody(f, refreshAhead)
	writeTime, err := parallel(n, 16, fmt.Sprintf("writing %d configs", n), "written", func(i int) error {
		_, err := vc.must("PUT", "tokenbroker/config/"+scaleName(i), body)
		return err
	})
	if err != nil {
		return err
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
	return nil
}

// scaleRead reads every name once (64 readers), each read one mint, and
// returns when the reads ended and the upstream calls by then.
func (d *driver) scaleRead(vc *vaultClient, f *fake, n int) (time.Time, int, error) {
	// Start the reads right after a periodic pass, so every token minted
	// below is inside its refresh window (or expired) when the next pass
	// comes, and that pass has all n names to refresh.
	d.avoidTick(55 * time.Second)
	readTime, err := parallel(n, 64, fmt.Sprintf("reading %d names", n), "read", func(i int) error {
		_, err := vc.must("GET", "tokenbroker/creds/"+scaleName(i), nil)
		return err
	})
	if err != nil {
		return time.Time{}, 0, err
	}
	readsDone := time.Now()
	mints := f.answered()
	d.info(fmt.Sprintf("5. first read of all %d names (64 readers, provider latency 50 ms: one mint each)", n),
		fmt.Sprintf("%.1f s (%.0f mints/s, %d upstream calls)", readTime.Seconds(), float64(n)/readTime.Seconds(), mints), "")
	return readsDone, mints, nil
}

// watchPass waits until f has answered want calls, or answered none for
// 10 s, or until.
func (d *driver) watchPass(f *fake, want int, until time.Time) {
	lastProgress, lastCount := time.Now(), f.answered()
	for time.Now().Before(until) && lastCount < want {
		time.Sleep(200 * time.Millisecond)
		if c := f.answered(); c != lastCount {
			lastProgress, lastCount = time.Now(), c
		} else if time.Since(lastProgress) > 10*time.Second {
			break
		}
	}
}

// passesCutShort quotes Vault's log when it cut a periodic pass of
// tokenbroker/ short, or returns "".
func (d *driver) passesCutShort() string {
	raw, err := os.ReadFile(d.cfg.vaultLog)
	if err != nil {
		return ""
	}
	k := strings.Count(string(raw), "error rolling back: path=tokenbroker/")
	if k == 0 {
		return ""
	}
	return fmt.Sprintf(" Vault's log shows %d periodic pass(es) of tokenbroker/ cut short (\"error rolling back: path=tokenbroker/ … context deadline exceeded\"): "+
		"Vault gives a rollback request, which runs the pass, at most 90 s (DefaultMaxRequestDuration).", k)
}

// parallel runs fn(i) for i in [0, n) on workers goroutines, stopping early
// after 3 minutes, and returns how long it took. Unless every call ran and
// succeeded, the error says how many did, as "<what>: <n> <did> in <time>, <k>
// errors (first: <error>)".
func parallel(n, workers int, what, did string, fn func(i int) error) (time.Duration, error) {
	var (
		next       atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		done, errs int
		first      error
	)
	t0 := time.Now()
	deadline := t0.Add(3 * time.Minute)
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
	took := time.Since(t0)
	if done != n || errs != 0 {
		return took, fmt.Errorf("%s: %d %s in %s, %d errors (first: %v)", what, done, did, took, errs, first)
	}
	return took, nil
}
