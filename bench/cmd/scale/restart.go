package main

// The restart (5): after watching the provider's call rate for -settle (the
// baseline), reload the plugin (a new process with an empty cache, N chains
// in storage), read -restart-reads distinct random names right away, and
// watch the provider for the minute after the reload: a restart must serve
// from storage and must not refresh everything at once.

import (
	"context"
	"fmt"
	"time"
)

const afterReload = time.Minute

func (d *driver) restartPhase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.settle+afterReload+10*time.Minute)
	defer cancel()
	n := d.cfg.names
	old, _ := d.pluginProcess(ctx)

	logf("watching the provider for %s before the reload", d.cfg.settle)
	settled := d.up.now()
	if err := sleep(ctx, d.cfg.settle); err != nil {
		return err
	}
	reloaded := d.up.now()
	base := d.up.between(settled, reloaded)
	r, err := d.api.ok(ctx, "PUT", "sys/plugins/reload/backend", map[string]any{"mounts": []string{mount + "/"}})
	if err != nil {
		return fmt.Errorf("reloading the plugin: %w", err)
	}
	reloadTook := r.took

	k := min(d.cfg.restartReads, n)
	picks := d.rng.Perm(n)[:k]
	log := &readLog{}
	run := runPool(ctx, k, d.cfg.restartConc, func(ctx context.Context, j int) (time.Duration, error) {
		d.readCreds(ctx, picks[j], log)
		return 0, nil
	})
	log.lat = log.lat.sorted()
	readsDone := time.Since(reloaded.at)
	waited, known, _, werr := d.waitedReads(ctx) // the new process counts from zero

	if err := sleep(ctx, time.Until(reloaded.at.Add(afterReload))); err != nil {
		return err
	}
	minute := d.up.between(reloaded, d.up.now())
	cur, desc := d.remember(ctx, "a minute after the reload")

	d.rep.info("4. plugin reload (PUT sys/plugins/reload/backend mounts=tokenbroker/)", "answered in %s; plugin process %d → %d",
		msec(reloadTook), old.pid, cur.pid)
	d.rep.check(fmt.Sprintf("4. first read of %d random names right after the reload (%d readers): p99", k, d.cfg.restartConc),
		"< 50 ms, 0 failed", log.lat.q(.99) < 50*time.Millisecond && log.errs == 0,
		"%s (%s; all read within %.1f s of the reload)%s", msec(log.lat.q(.99)), log.lat.summary(), readsDone.Seconds(), log.failures())
	switch {
	case werr != nil:
		d.rep.check("4. those reads: waited for the provider / expired tokens served", "0 / 0", false,
			"metrics failed (%v) / %d expired", werr, log.expired)
	case !known:
		d.rep.check("4. those reads: slower than 50 ms (no metrics path) / expired tokens served", "0 / 0", log.slow == 0 && log.expired == 0,
			"%d / %d%s", log.slow, log.expired, example(log.expiredExample))
	default:
		d.rep.check("4. those reads: waited for the provider / expired tokens served", "0 / 0", waited == 0 && log.expired == 0,
			"%.0f (the new process's tokenbroker_creds_reads_total{result=\"waited\"}) / %d%s", waited, log.expired, example(log.expiredExample))
	}
	steadyMean := float64(n) / (d.cfg.lifetime - d.window).Seconds()
	d.rep.check("4. provider calls in the minute after the reload", "busiest second ≤ 1.5× N/(L−W)",
		float64(minute.busiest) <= 1.5*steadyMean,
		"%d calls (mean %.1f/s; busiest second %d, %.0f s after the reload; N/(L−W) = %.1f/s); the %s before: mean %.1f/s, busiest %d",
		minute.calls, minute.mean(), minute.busiest, minute.busiestAt.Seconds(), steadyMean, d.cfg.settle, base.mean(), base.busiest)
	d.rep.info("4. plugin RSS a minute after the reload", "%s", desc)
	d.rep.note("4: provider calls a second in the minute after the reload, 10 s at a time (mean/busiest): %s; "+
		"the first reads took %s in all (%d done).",
		bySpan(d.up.perSecond(reloaded, d.up.now()), 10), run.took.Round(time.Millisecond), run.done)
	return nil
}

// sleep waits for dur or until ctx ends.
func sleep(ctx context.Context, dur time.Duration) error {
	if dur <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
