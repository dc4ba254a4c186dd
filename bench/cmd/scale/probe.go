package main

// What the driver reads beside the API's answers: the plugin process's
// memory (from /proc) and the plugin's own count of reads that waited for the
// provider (from its metrics).

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procStatus is the part of /proc/<pid>/status the driver uses.
type procStatus struct {
	pid, ppid      int
	name           string // comm, at most 15 bytes
	rssKiB, hwmKiB int
}

func (p procStatus) String() string {
	return fmt.Sprintf("%s (peak %s)", mib(p.rssKiB), mib(p.hwmKiB))
}

func mib(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func readStatus(pid int) (procStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	defer f.Close()
	st := procStatus{pid: pid}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		val = strings.TrimSpace(val)
		num, _ := strconv.Atoi(strings.TrimSuffix(val, " kB"))
		switch key {
		case "Name":
			st.name = val
		case "PPid":
			st.ppid = num
		case "VmRSS":
			st.rssKiB = num
		case "VmHWM":
			st.hwmKiB = num
		}
	}
	return st, sc.Err()
}

// pluginProcess finds the one plugin process: a child of Vault whose comm
// starts with "vault-plugin-se" (comm is cut to 15 bytes). Vault may be
// starting it (after a reload), so it waits up to 10 s for exactly one.
func (d *driver) pluginProcess(ctx context.Context) (procStatus, error) {
	var found []procStatus
	for deadline := time.Now().Add(10 * time.Second); ; {
		found = found[:0]
		paths, _ := filepath.Glob("/proc/[0-9]*/status")
		for _, p := range paths {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			st, err := readStatus(pid)
			if err == nil && st.ppid == d.srv.pid() && strings.HasPrefix(st.name, "vault-plugin-se") {
				found = append(found, st)
			}
		}
		if len(found) == 1 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(found) != 1 {
		return procStatus{}, fmt.Errorf("%d plugin processes under Vault (pid %d): %v", len(found), d.srv.pid(), found)
	}
	return found[0], nil
}

// pluginRSS is pluginProcess's status, or a description of why there is none.
func (d *driver) pluginRSS(ctx context.Context) (procStatus, string) {
	st, err := d.pluginProcess(ctx)
	if err != nil {
		return st, "not measured: " + err.Error()
	}
	return st, st.String()
}

// remember measures the plugin's and Vault's memory at a point of the run,
// for the memory notes, and returns the plugin's.
func (d *driver) remember(ctx context.Context, when string) (procStatus, string) {
	st, desc := d.pluginRSS(ctx)
	vault := "unknown"
	if v, err := readStatus(d.srv.pid()); err == nil {
		vault = v.String()
	}
	d.mem = append(d.mem, fmt.Sprintf("%s (t+%s): plugin %s, Vault %s", when, time.Since(d.start).Round(time.Second), desc, vault))
	return st, desc
}

// waitedReads is the plugin's count of creds reads that waited for the
// provider: the sum of the tokenbroker_creds_reads_total samples with
// result="waited" at GET tokenbroker/metrics (per name, or one aggregate
// series above metrics_max_names names). known is false when the path does
// not exist; took is how long the scrape took.
func (d *driver) waitedReads(ctx context.Context) (waited float64, known bool, took time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	r, err := d.api.do(ctx, "GET", mount+"/metrics", nil)
	if err != nil {
		return 0, false, r.took, err
	}
	switch {
	case r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed:
		return 0, false, r.took, nil
	case r.status != http.StatusOK:
		return 0, false, r.took, fmt.Errorf("GET %s/metrics: HTTP %d: %s", mount, r.status, oneLine(string(r.body)))
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		end := strings.LastIndex(line, "} ") // the labels end; the value (and maybe a timestamp) follow
		if end < 0 || !strings.HasPrefix(line, "tokenbroker_creds_reads_total{") || !strings.Contains(line[:end], `result="waited"`) {
			continue
		}
		fields := strings.Fields(line[end+2:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, true, r.took, fmt.Errorf("metrics line %q: %w", line, err)
		}
		waited += v
	}
	return waited, true, r.took, nil
}
