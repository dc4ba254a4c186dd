package main

// The peak of each phase: a goroutine samples the plugin's and Vault's VmRSS
// every 200 ms from /proc, so a phase's peak is known, not only its value
// at the end (a collection may have returned memory by then). VmHWM, the
// process's peak since it started, is reported beside it.

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"
)

const peakEvery = 200 * time.Millisecond

// phasePeak is what the sampler saw through one phase.
type phasePeak struct {
	plugin, vault int // max VmRSS (KiB)
	samples       int
}

type peakSampler struct {
	d *driver

	mu  sync.Mutex
	pid int // the plugin process sampled; 0: find it
	cur phasePeak
}

func newPeakSampler(d *driver) *peakSampler { return &peakSampler{d: d} }

// run samples until ctx ends.
func (p *peakSampler) run(ctx context.Context) {
	t := time.NewTicker(peakEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.sample(ctx)
	}
}

func (p *peakSampler) sample(ctx context.Context) {
	p.mu.Lock()
	pid := p.pid
	p.mu.Unlock()
	var plugin procStatus
	var err error
	if pid != 0 {
		plugin, err = readStatus(pid)
	}
	if pid == 0 || err != nil || plugin.ppid != p.d.srv.pid() {
		// Gone (a reload) or not found yet: look for it again.
		if plugin, err = p.d.pluginProcess(ctx); err != nil {
			return
		}
	}
	vault, _ := readStatus(p.d.srv.pid())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pid = plugin.pid
	p.cur.plugin = max(p.cur.plugin, plugin.rssKiB)
	p.cur.vault = max(p.cur.vault, vault.rssKiB)
	p.cur.samples++
}

// begin starts a phase's peak.
func (p *peakSampler) begin() {
	p.mu.Lock()
	p.cur = phasePeak{}
	p.mu.Unlock()
}

// end returns the phase's peak (with one last sample).
func (p *peakSampler) end(ctx context.Context) phasePeak {
	p.sample(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// phasePeak reports the peak of the phase just run.
func (d *driver) phasePeak(ctx context.Context, phase string) {
	pk := d.peaks.end(ctx)
	if d.phasePk == nil {
		d.phasePk = map[string]phasePeak{}
	}
	d.phasePk[phase] = pk
	hwm := "unknown"
	if st, err := d.pluginProcess(ctx); err == nil {
		hwm = mib(st.hwmKiB)
	}
	raft := ""
	if size, err := dirSize(filepath.Join(d.srv.dir, "raft")); err == nil {
		if d.raftSize == nil {
			d.raftSize = map[string]int64{}
		}
		d.raftSize[phase] = size
		raft = fmt.Sprintf("; raft data directory %.1f MiB", float64(size)/(1<<20))
	}
	d.rep.info(fmt.Sprintf("%s: peak RSS during the phase (sampled every %s)", phase, peakEvery),
		"plugin %s (%.2f KiB a name above the %s right after the mount), Vault %s; %d samples; plugin VmHWM since its start %s%s",
		mib(pk.plugin), float64(pk.plugin-d.rssMount)/float64(d.cfg.names), mib(d.rssMount), mib(pk.vault), pk.samples, hwm, raft)
	d.mem = append(d.mem, fmt.Sprintf("peak during %s (VmRSS sampled every %s): plugin %s, Vault %s", phase, peakEvery, mib(pk.plugin), mib(pk.vault)))
}

// perName sums up the memory and storage a name costs, for the projection.
func (d *driver) perName() {
	if !d.written || d.phasePk == nil {
		return
	}
	n := float64(d.cfg.names)
	peak := 0
	for _, pk := range d.phasePk {
		peak = max(peak, pk.plugin)
	}
	what := "config"
	if d.cfg.apps {
		what = "connection"
	}
	settled := "not measured (no read phase)"
	if d.rssRead > 0 {
		settled = fmt.Sprintf("%.2f KiB", float64(d.rssRead-d.rssMount)/n)
	}
	storage := "unknown"
	if size, ok := d.raftSize["read"]; ok {
		storage = fmt.Sprintf("%.0f bytes (raft data directory after the first reads, %.1f MiB, / N)", float64(size)/n, float64(size)/(1<<20))
	} else if size, ok := d.raftSize["write"]; ok {
		storage = fmt.Sprintf("%.0f bytes (raft data directory after the writes / N)", float64(size)/n)
	}
	d.rep.info(fmt.Sprintf("per %s: plugin RSS above the %s right after the mount, / N", what, mib(d.rssMount)),
		"%s after the first reads; %.2f KiB at the peak of all phases (%s); storage %s", settled, float64(peak-d.rssMount)/n, mib(peak), storage)
	if d.cfg.apps {
		// The figure to beat: a self-contained config cost 215 MiB of plugin
		// RSS at 100 000 configs with short tokens (issue #23), mount included.
		const configKiB = 215.0 * 1024 / 100_000
		d.rep.check("per connection: the peak plugin RSS of all phases / N, mount included",
			fmt.Sprintf("< %.2f KiB (215 MiB / 100 000 self-contained configs)", configKiB),
			float64(peak)/n < configKiB, "%.2f KiB (%s / %d)", float64(peak)/n, mib(peak), d.cfg.names)
	}
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var size int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			size += info.Size()
		}
		return nil
	})
	return size, err
}
