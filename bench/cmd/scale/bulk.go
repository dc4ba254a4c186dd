package main

// The bulk phases: writing every config (1) and the first read of every
// name (2), each by a pool of workers through the HTTP API and bounded by
// -bulk-timeout.

import (
	"context"
	"fmt"
	"sync"
	"time"
)

const rssTarget = 250 * 1024 // KiB

// poolRun is what a pool of workers did.
type poolRun struct {
	done, errs int
	first      error
	took       time.Duration
	lat        latencies // sorted
}

// runPool calls job(i) for every i in [0, n) on workers goroutines, until all
// ran or ctx ends.
func runPool(ctx context.Context, n, workers int, job func(ctx context.Context, i int) (time.Duration, error)) poolRun {
	todo := make(chan int)
	go func() {
		defer close(todo)
		for i := range n {
			select {
			case todo <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu  sync.Mutex
		run = poolRun{lat: make(latencies, 0, n)}
		wg  sync.WaitGroup
	)
	t0 := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range todo {
				took, err := job(ctx, i)
				mu.Lock()
				run.done++
				run.lat = append(run.lat, took)
				if err != nil {
					run.errs++
					if run.first == nil {
						run.first = err
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	run.took = time.Since(t0)
	run.lat = run.lat.sorted()
	return run
}

// err says why the pool did not do all n jobs, or is nil.
func (p poolRun) err(n int, what string) error {
	if p.done == n && p.errs == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d of %d done in %s, %d errors (first: %v)", what, p.done, n, p.took.Round(time.Second), p.errs, p.first)
}

// everyName sends method <mount><prefix><name> with body for every name, on
// workers, bounded by -bulk-timeout.
func (d *driver) everyName(ctx context.Context, workers int, method, prefix string, body any) poolRun {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.bulkTimeout)
	defer cancel()
	return runPool(ctx, d.cfg.names, workers, func(ctx context.Context, i int) (time.Duration, error) {
		r, err := d.api.ok(ctx, method, mount+prefix+name(i), body)
		return r.took, err
	})
}

// clientBody is the client every config (or the app) holds.
func (d *driver) clientBody() map[string]any {
	body := map[string]any{
		"provider":      d.cfg.dialect,
		"token_url":     d.up.tokenURL(),
		"client_id":     clientID,
		"client_secret": clientSecret,
	}
	if d.cfg.refreshAhead > 0 {
		body["refresh_ahead"] = int(d.cfg.refreshAhead / time.Second)
	}
	return body
}

// writePhase writes the N configs against the proxy (or, with -apps, the
// app and N connections of it), then reads back the refresh_ahead they got
// to know the refresh window.
func (d *driver) writePhase(ctx context.Context) error {
	n := d.cfg.names
	body, what, back := d.clientBody(), "configs", mount+"/config/"+name(0)
	if d.cfg.apps {
		if _, err := d.api.ok(ctx, "PUT", mount+"/app/"+d.cfg.app, body); err != nil {
			return fmt.Errorf("writing the app: %w", err)
		}
		body = map[string]any{"app": d.cfg.app}
		what = fmt.Sprintf("connections of app/%s", d.cfg.app)
		back = mount + "/app/" + d.cfg.app
	}
	before := d.up.now()
	run := d.everyName(ctx, d.cfg.writers, "PUT", "/config/", body)
	if err := run.err(n, "writing "+what); err != nil {
		return err
	}
	d.written = true
	d.rep.info(fmt.Sprintf("1. write %d %s through the HTTP API (%d writers)", n, what, d.cfg.writers),
		"%.1f s (%s; per write %s)", run.took.Seconds(), perSec(n, run.took), run.lat.summary())
	if calls := d.up.between(before, d.up.now()).calls; calls != 0 {
		d.rep.info("1. upstream calls while writing", "%d (a config write is expected to call nobody)", calls)
	}
	_, desc := d.remember(ctx, "after the writes")
	d.rep.info("1. plugin RSS after the writes", "%s", desc)

	var cfg struct {
		Data struct {
			RefreshAhead int64 `json:"refresh_ahead"`
		} `json:"data"`
	}
	r, err := d.api.ok(ctx, "GET", back, nil)
	if err == nil {
		err = r.decode(&cfg)
	}
	if err != nil {
		return fmt.Errorf("reading back %s: %w", back, err)
	}
	d.window = min(time.Duration(cfg.Data.RefreshAhead)*time.Second, d.cfg.lifetime/2)
	return nil
}

// readPhase reads every name once (each read mints) and measures the plugin
// process's memory.
func (d *driver) readPhase(ctx context.Context) error {
	n := d.cfg.names
	before := d.up.now()
	run := d.everyName(ctx, d.cfg.readers, "GET", "/creds/", nil)
	t := d.up.between(before, d.up.now())
	if err := run.err(n, "first reads"); err != nil {
		return err
	}
	d.rep.info(fmt.Sprintf("2. first read of all %d names (%d readers; each mints)", n, d.cfg.readers),
		"%.1f s (%s; per read %s; %d upstream calls)", run.took.Seconds(), perSec(n, run.took), run.lat.summary(), t.calls)
	st, desc := d.remember(ctx, "after the first reads")
	d.rssRead = st.rssKiB
	d.rep.check(fmt.Sprintf("2. plugin RSS after the first read of all %d names", n), "< 250 MiB", st.rssKiB > 0 && st.rssKiB < rssTarget,
		"%s; %.2f KiB a name above the %s right after the mount", desc, float64(st.rssKiB-d.rssMount)/float64(n), mib(d.rssMount))
	return nil
}
