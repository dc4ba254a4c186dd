package main

// The app secret rotation (-apps): readers read -rotate-names connections in
// a loop at -rotate-rate while the app's client_secret changes, first at the
// provider (which accepts only the new one from then on) and at once in Vault
// (one write of app/<app>); the readers go on until every one of those
// connections was served a token issued after the rotation (a renewal across
// it), bounded by L + 2 min. Then every name is read once more: a chain the
// rotation lost would fail there (or need an operator, which status shows
// for the names read in the loop).

import (
	"context"
	"fmt"
	"sync"
	"time"
)

func (d *driver) rotatePhase(ctx context.Context) error {
	if !d.cfg.apps {
		d.rep.info("7. app secret rotation", "not run: needs -apps (self-contained configs hold the secret each, a rotation is N writes)")
		return nil
	}
	n := min(d.cfg.rotateNames, d.cfg.names)
	lsecs := int64(d.cfg.lifetime / time.Second)
	var (
		mu        sync.Mutex
		reads     int
		failed    int
		expired   int
		firstErr  error
		rotatedAt int64             // unix second of the rotation; 0 before it
		renewed   = make([]bool, n) // served a token issued after the rotation
		left      = n
		lat       latencies
	)
	allRenewed := make(chan struct{})
	readCtx, stopReads := context.WithCancel(ctx)
	defer stopReads()
	tick := time.NewTicker(time.Duration(float64(time.Second) / d.cfg.rotateRate))
	defer tick.Stop()
	next := make(chan int)
	go func() {
		defer close(next)
		for i := 0; ; i++ {
			select {
			case <-readCtx.Done():
				return
			case <-tick.C:
			}
			select {
			case next <- i % n:
			case <-readCtx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range d.cfg.rotateConc {
		wg.Go(func() {
			for i := range next {
				r, err := d.api.ok(readCtx, "GET", mount+"/creds/"+name(i), nil)
				if readCtx.Err() != nil {
					return
				}
				var exp int64
				if err == nil {
					exp, err = r.credsExpiry()
				}
				now := time.Now().Unix()
				mu.Lock()
				reads++
				lat = append(lat, r.took)
				switch {
				case err != nil:
					failed++
					if firstErr == nil {
						firstErr = err
					}
				case exp <= now:
					expired++
				case rotatedAt > 0 && exp-lsecs > rotatedAt && !renewed[i]:
					// Issued (expiry − L) in a second after the rotation's.
					renewed[i] = true
					if left--; left == 0 {
						close(allRenewed)
					}
				}
				mu.Unlock()
			}
		})
	}

	before := d.up.now()
	select { // the loop runs a while on the old secret first
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	secret := fmt.Sprintf("%s-rotated-%d", clientSecret, time.Now().UnixNano())
	t0 := time.Now()
	d.up.rotateSecret(secret)
	r, err := d.api.ok(ctx, "PUT", mount+"/app/"+d.cfg.app, map[string]any{"client_secret": secret})
	if err != nil {
		return fmt.Errorf("rotating app/%s's client_secret: %w", d.cfg.app, err)
	}
	mu.Lock()
	rotatedAt = t0.Unix()
	mu.Unlock()
	d.rep.info(fmt.Sprintf("7. rotate app/%s's client_secret (the provider first, then vault write app/%s client_secret=...)", d.cfg.app, d.cfg.app),
		"the write answered in %s, %s after the provider's switch", msec(r.took), msec(time.Since(t0)))

	bound := d.cfg.lifetime + 2*time.Minute
	var timedOut bool
	select {
	case <-allRenewed:
		time.Sleep(5 * time.Second) // a few more reads on the renewed tokens
	case <-time.After(bound):
		timedOut = true
	case <-ctx.Done():
		return ctx.Err()
	}
	stopReads()
	wg.Wait()
	after := d.up.now()
	t := d.up.between(before, after)

	mu.Lock()
	lat = lat.sorted()
	nRenewed := n - left
	d.rep.check(fmt.Sprintf("7. reads of %d connections across the rotation (%d readers at %.0f/s)", n, d.cfg.rotateConc, d.cfg.rotateRate),
		"0 failed, 0 expired", failed == 0 && expired == 0,
		"%d reads in %.0f s, %d failed%s, %d expired tokens served; per read %s", reads, after.at.Sub(before.at).Seconds(), failed,
		errSuffix(firstErr), expired, lat.summary())
	mu.Unlock()
	d.rep.check(fmt.Sprintf("7. of those %d, served a token issued after the rotation (renewed across it)", n), "all, within L + 2 min",
		!timedOut && nRenewed == n, "%d of %d, %s after the rotation", nRenewed, n, time.Since(t0).Round(time.Second))
	d.rep.info("7. provider calls during the phase", "%d calls (mean %.1f/s), %d refused by the provider (4xx, e.g. the old secret), %d not answered",
		t.calls, t.mean(), t.refused, t.failed)

	// Lost chains: the next read of every name, and the health of those read
	// in the loop.
	lost := d.everyName(ctx, d.cfg.readers, "GET", "/creds/", nil)
	unhealthy, statusErr := 0, error(nil)
	for i := range n {
		var st struct {
			Data struct {
				Healthy           *bool `json:"healthy"`
				NeedsRefreshToken bool  `json:"needs_refresh_token"`
			} `json:"data"`
		}
		r, err := d.api.ok(ctx, "GET", mount+"/status/"+name(i), nil)
		if err == nil {
			err = r.decode(&st)
		}
		if err != nil || st.Data.Healthy == nil || !*st.Data.Healthy || st.Data.NeedsRefreshToken {
			unhealthy++
			if statusErr == nil {
				statusErr = fmt.Errorf("status/%s: %v (HTTP %d: %s)", name(i), err, r.status, oneLine(string(r.body)))
			}
		}
	}
	d.rep.check(fmt.Sprintf("7. lost chains: the next read of all %d names fails, or status/<name> of the %d not healthy", d.cfg.names, n), "0",
		lost.errs == 0 && lost.done == d.cfg.names && unhealthy == 0,
		"%d of %d reads failed%s (%.1f s, per read %s); %d of %d not healthy%s", lost.errs+d.cfg.names-lost.done, d.cfg.names, errSuffix(lost.first),
		lost.took.Seconds(), lost.lat.summary(), unhealthy, n, errSuffix(statusErr))
	return nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (first: " + oneLine(err.Error()) + ")"
}
