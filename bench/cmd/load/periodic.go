package main

import (
	"fmt"
	"strings"
	"time"
)

// Vault runs the plugin's periodic pass about once a minute. Scenarios that a
// pass would disturb (a token left to expire, a pass to be timed) locate the
// passes by a sentinel config, `tick`: its 4 s token is due at every pass, so
// each of its upstream calls after the priming read marks one.

// startSentinel starts the sentinel's fake provider and primes config/tick.
// Only a provider that does not start is an error; without the config the
// driver runs on, but the passes are not located.
func (d *driver) startSentinel() error {
	var err error
	if d.ticker, err = newFake(4*time.Second, 0); err != nil {
		return err
	}
	err = d.configure("tick", d.ticker, time.Minute)
	if err == nil {
		_, err = d.vault.must("GET", "tokenbroker/creds/tick", nil)
	}
	if err != nil {
		logf("sentinel config: %v (periodic passes will not be located)", err)
	}
	return nil
}

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

// tickNote adds the pass times seen to the results file.
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
