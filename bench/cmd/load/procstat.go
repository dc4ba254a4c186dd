package main

// The plugin process as the operating system sees it, read from /proc.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pluginPIDs finds the processes running the tokenbroker plugin binary.
func pluginPIDs(pluginBin string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	want, _ := filepath.Abs(pluginBin)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(raw), "\x00")
		if argv0 == want || (want == "" && strings.HasSuffix(argv0, "/vault-plugin-secrets-tokenbroker")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat is the plugin process's memory (VmRSS, VmHWM) and open files.
type procStat struct {
	rssKiB, hwmKiB, fds int
}

func (p procStat) String() string {
	return fmt.Sprintf("RSS %.1f MiB (peak %.1f MiB), %d open fds", float64(p.rssKiB)/1024, float64(p.hwmKiB)/1024, p.fds)
}

// pluginStat reads the procStat of the one tokenbroker plugin process.
func pluginStat(pluginBin string) (procStat, error) {
	pids := pluginPIDs(pluginBin)
	if len(pids) != 1 {
		return procStat{}, fmt.Errorf("found %d tokenbroker plugin processes (%v) for %s", len(pids), pids, pluginBin)
	}
	var st procStat
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pids[0]))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			st.rssKiB = n
		case "VmHWM":
			st.hwmKiB = n
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pids[0]))
	st.fds = len(fds)
	return st, nil
}
