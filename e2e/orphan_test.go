//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An orphan never acts: when Vault dies by kill -9, the plugin processes it
// started (re-parented, still running) exit within seconds, and the provider
// sees no call from them, although their chains keep coming due.
func TestOrphanedPluginExits(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 4*time.Second) // chains fall due every few seconds
	v.WriteConfig("orphan", fake.ConfigArgs("echo360", "refresh_ahead=2s")...)
	v.ReadCreds("orphan")
	vaultPID := v.proc.cmd.Process.Pid
	plugins := childrenNamed(t, vaultPID, "vault-plugin-se") // /proc truncates comm to 15 bytes
	if len(plugins) == 0 {
		t.Fatalf("no plugin process found under Vault (pid %d)", vaultPID)
	}

	if err := syscall.Kill(vaultPID, syscall.SIGKILL); err != nil { // Vault alone, not its process group
		t.Fatalf("kill -9 vault: %v", err)
	}
	killed := time.Now()
	callsAtKill := fake.TotalCalls()
	eventually(t, 10*time.Second, 100*time.Millisecond, fmt.Sprintf("plugin processes %v to exit after Vault was killed", plugins), func() bool {
		for _, pid := range plugins {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	t.Logf("plugin processes gone %s after kill -9 of Vault", time.Since(killed).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // past the next due refresh, had anyone been left to make it
	if got := fake.TotalCalls() - callsAtKill; got != 0 {
		t.Fatalf("the provider saw %d call(s) after Vault was killed; want 0 from an orphan", got)
	}
}

// childrenNamed lists the pids whose parent is ppid and whose command name starts with prefix.
func childrenNamed(t *testing.T, ppid int, prefix string) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatalf("glob /proc: %v", err)
	}
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
		s := string(b)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		if len(fields) < 2 || !strings.HasPrefix(s[lp+1:rp], prefix) {
			continue
		}
		if parent, _ := strconv.Atoi(fields[1]); parent == ppid {
			pid, _ := strconv.Atoi(strings.TrimSpace(s[:lp]))
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid runs (a zombie, exited but not reaped, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}
