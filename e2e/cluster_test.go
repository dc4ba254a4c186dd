//go:build e2e

package e2e

// A multi-node Vault cluster with integrated storage (raft) on loopback, for
// HA tests: every node is a real `vault server -config=…` process in its own
// process group (so `kill -9` of the group takes its plugin processes too),
// with its own data dir, plugin dir (a copy of the plugin binary) and log
// files, one per incarnation, kept in the test's temp dir.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a raft-backed Vault cluster private to a test.
type Cluster struct {
	t         *testing.T
	bin       binaries
	Dir       string
	Nodes     []*Node
	RootToken string
	UnsealKey string
	// raftMult is the raft performance_multiplier: Vault scales its 3 s
	// heartbeat/election timeouts (0.5 s leader lease) by it; Vault's default
	// is 5 (15 s). Lower means faster failover but more spurious step-downs on
	// a loaded machine (1 caused some on 2 busy cores). E2E_HA_RAFT_MULTIPLIER
	// overrides the 2 used here.
	raftMult int
}

// Node is one server of a Cluster. Its embedded *Vault runs the CLI against
// this node (Run, Must, JSON, ReadCreds, …) with the root token.
type Node struct {
	*Vault
	c           *Cluster
	Index       int
	ID          string // raft node_id: n1, n2, …
	APIPort     int
	ClusterPort int
	ConfigPath  string
	DataDir     string
	Logs        []string // one server log per incarnation, oldest first
}

var haHTTP = &http.Client{Timeout: 3 * time.Second}

// StartCluster starts n Vault servers with raft storage, initialises the first
// (one unseal key), unseals it, joins and unseals the others, and waits until
// autopilot reports n healthy voters. Everything is stopped and removed at
// test cleanup; on failure the relevant lines of every server log are printed.
func StartCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	bin := needBinaries(t)
	c := &Cluster{t: t, bin: bin, Dir: t.TempDir(), raftMult: 2}
	if s := os.Getenv("E2E_HA_RAFT_MULTIPLIER"); s != "" {
		m, err := strconv.Atoi(s)
		if err != nil || m < 1 || m > 10 {
			t.Fatalf("E2E_HA_RAFT_MULTIPLIER=%q: want 1..10", s)
		}
		c.raftMult = m
	}
	t.Cleanup(c.dumpLogsOnFailure) // runs after the processes are stopped (LIFO)

	for i := 0; i < n; i++ {
		nd := &Node{c: c, Index: i, ID: fmt.Sprintf("n%d", i+1)}
		dir := filepath.Join(c.Dir, nd.ID)
		nd.DataDir = filepath.Join(dir, "data")
		pluginDir := filepath.Join(dir, "plugins")
		for _, d := range []string{nd.DataDir, pluginDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		copyFile(t, bin.plugin, filepath.Join(pluginDir, pluginName), 0o755)
		nd.Vault = &Vault{t: t, bin: bin, Dir: dir}
		var err error
		for attempt := 0; attempt < 3; attempt++ { // a free port may be taken before Vault binds it
			nd.APIPort, nd.ClusterPort = freePort(t), freePort(t)
			nd.writeConfig(pluginDir)
			if err = nd.Start(); err == nil {
				break
			}
			t.Logf("starting %s (attempt %d): %v", nd.ID, attempt+1, err)
		}
		if err != nil {
			t.Fatalf("starting %s: %v", nd.ID, err)
		}
		c.Nodes = append(c.Nodes, nd)
	}

	first := c.Nodes[0]
	var initOut struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	out := first.Must("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if err := json.Unmarshal([]byte(out), &initOut); err != nil || len(initOut.Keys) != 1 || initOut.RootToken == "" {
		t.Fatalf("operator init: %v: %q", err, out)
	}
	c.UnsealKey, c.RootToken = initOut.Keys[0], initOut.RootToken
	for _, nd := range c.Nodes {
		nd.Token = c.RootToken
	}
	first.Unseal()
	c.WaitActive(nil, 60*time.Second)
	for _, nd := range c.Nodes[1:] {
		nd.Must("operator", "raft", "join", first.Addr)
		nd.Unseal()
	}
	c.WaitHealthy(90 * time.Second) // autopilot promotes after ~10 s of stability
	return c
}

// writeConfig writes the node's server config file.
func (nd *Node) writeConfig(pluginDir string) {
	nd.Addr = fmt.Sprintf("http://127.0.0.1:%d", nd.APIPort)
	nd.ConfigPath = filepath.Join(nd.Dir, "server.hcl")
	hcl := fmt.Sprintf(`storage "raft" {
  path                   = %q
  node_id                = %q
  performance_multiplier = %d
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "https://127.0.0.1:%d"
disable_mlock    = true
plugin_directory = %q
ui               = false
`, nd.DataDir, nd.ID, nd.c.raftMult, nd.APIPort, nd.ClusterPort, nd.APIPort, nd.ClusterPort, pluginDir)
	if err := os.WriteFile(nd.ConfigPath, []byte(hcl), 0o600); err != nil {
		nd.t.Fatal(err)
	}
}

// Start starts the node's server (a new incarnation with a new log file, same
// config and data dir) and waits until its API answers (sealed or not).
func (nd *Node) Start() error {
	nd.log = filepath.Join(nd.Dir, fmt.Sprintf("vault-%s-%d.log", nd.ID, len(nd.Logs)))
	nd.Logs = append(nd.Logs, nd.log)
	p, err := startProc(nd.t, nd.log, nd.env(), nd.bin.vault, "server", "-config="+nd.ConfigPath)
	if err != nil {
		return err
	}
	nd.proc = p
	deadline := time.Now().Add(startupTimeout)
	for {
		if code, err := nd.Health(); err == nil && code != 0 {
			return nil
		}
		select {
		case <-p.done:
			nd.proc = nil
			return fmt.Errorf("%s exited during startup:\n%s", nd.ID, tail(nd.log, 20))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			nd.proc = nil
			return fmt.Errorf("%s not answering after %s:\n%s", nd.ID, startupTimeout, tail(nd.log, 20))
		}
	}
}

// Unseal unseals the node with the cluster's key.
func (nd *Node) Unseal() {
	nd.t.Helper()
	nd.Must("operator", "unseal", nd.c.UnsealKey)
}

// Kill sends SIGKILL to the node's process group (Vault and the plugin
// processes it started) and waits until Vault has exited.
func (nd *Node) Kill() {
	nd.t.Helper()
	if nd.proc == nil {
		nd.t.Fatalf("%s is not running", nd.ID)
	}
	_ = syscall.Kill(-nd.proc.cmd.Process.Pid, syscall.SIGKILL)
	nd.proc.stop() // waits for exit; SIGKILLs stragglers of the group again
	nd.proc = nil
}

// Running reports whether the node's process is up.
func (nd *Node) Running() bool {
	if nd.proc == nil {
		return false
	}
	select {
	case <-nd.proc.done:
		return false
	default:
		return true
	}
}

// Health is the node's /v1/sys/health status code: 200 active, 429 standby,
// 503 sealed, 501 not initialised; 0 with an error when it does not answer.
func (nd *Node) Health() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nd.Addr+"/v1/sys/health", nil)
	resp, err := haHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Active returns the one running node that reports itself active, or nil
// when there is none (or, transiently, more than one).
func (c *Cluster) Active() *Node {
	var active []*Node
	for _, nd := range c.Nodes {
		if !nd.Running() {
			continue
		}
		if code, err := nd.Health(); err == nil && code == http.StatusOK {
			active = append(active, nd)
		}
	}
	if len(active) != 1 {
		return nil
	}
	return active[0]
}

// WaitActive waits until a running node other than except is active and
// returns it with the time it was first seen active.
func (c *Cluster) WaitActive(except *Node, timeout time.Duration) (*Node, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if a := c.Active(); a != nil && a != except {
			return a, time.Now()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no active node (other than %v) after %s", nodeID(except), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NameAddrs replaces every node's API and cluster address in s by its id,
// for readable error messages.
func (c *Cluster) NameAddrs(s string) string {
	for _, nd := range c.Nodes {
		s = strings.ReplaceAll(s, fmt.Sprintf("http://127.0.0.1:%d", nd.APIPort), nd.ID)
		s = strings.ReplaceAll(s, fmt.Sprintf("127.0.0.1:%d", nd.APIPort), nd.ID)
		s = strings.ReplaceAll(s, fmt.Sprintf("127.0.0.1:%d", nd.ClusterPort), nd.ID+"(cluster)")
	}
	return s
}

func nodeID(nd *Node) string {
	if nd == nil {
		return "-"
	}
	return nd.ID
}

// autopilotState is the part of sys/storage/raft/autopilot/state the tests use.
type autopilotState struct {
	Healthy bool     `json:"healthy"`
	Leader  string   `json:"leader"`
	Voters  []string `json:"voters"`
	Servers map[string]struct {
		Healthy bool   `json:"healthy"`
		Status  string `json:"status"`
	} `json:"servers"`
}

// Autopilot reads the autopilot state through the active node.
func (c *Cluster) Autopilot() (*autopilotState, error) {
	a := c.Active()
	if a == nil {
		return nil, fmt.Errorf("no active node")
	}
	req, _ := http.NewRequest(http.MethodGet, a.Addr+"/v1/sys/storage/raft/autopilot/state", nil)
	req.Header.Set("X-Vault-Token", c.RootToken)
	resp, err := haHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("autopilot state: %d %s", resp.StatusCode, body)
	}
	var r struct {
		Data autopilotState `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	return &r.Data, nil
}

// WaitHealthy waits until every node runs unsealed and autopilot reports all
// of them as healthy voters.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok := true
		for _, nd := range c.Nodes {
			code, err := nd.Health()
			if err != nil || (code != http.StatusOK && code != http.StatusTooManyRequests) {
				ok, last = false, fmt.Sprintf("%s health %d %v", nd.ID, code, err)
				break
			}
		}
		if ok {
			st, err := c.Autopilot()
			switch {
			case err != nil:
				ok, last = false, err.Error()
			case !st.Healthy || len(st.Voters) != len(c.Nodes):
				ok, last = false, fmt.Sprintf("autopilot healthy=%v voters=%v", st.Healthy, st.Voters)
			default:
				for id, s := range st.Servers {
					if !s.Healthy || (s.Status != "voter" && s.Status != "leader") {
						ok, last = false, fmt.Sprintf("autopilot: %s healthy=%v status=%s", id, s.Healthy, s.Status)
					}
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not healthy after %s: %s", timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// LeaderElections counts, over every server log, how often a node became
// raft leader after since, to tell spurious elections from those a test caused.
func (c *Cluster) LeaderElections(since time.Time) int {
	n := 0
	for _, nd := range c.Nodes {
		for _, l := range nd.Logs {
			b, _ := os.ReadFile(l)
			for _, line := range strings.Split(string(b), "\n") {
				if !strings.Contains(line, "entering leader state") {
					continue
				}
				ts, _, _ := strings.Cut(line, " ")
				if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && at.After(since) {
					n++
				}
			}
		}
	}
	return n
}

// pluginLogLine picks the server log lines worth printing on failure: the
// plugin's own, and the HA/raft transitions around them.
var pluginLogLine = regexp.MustCompile(`tokenbroker|acquired lock|entering standby|active operation|post-unseal|pre-seal|election|entering leader|entering follower|heartbeat timeout|lost leadership|\[ERROR\]|\[WARN\]`)

// dumpLogsOnFailure prints, for a failed test, the relevant lines of every
// server log, and copies the logs to $E2E_HA_LOGDIR when it is set.
func (c *Cluster) dumpLogsOnFailure() {
	keep := os.Getenv("E2E_HA_LOGDIR")
	for _, nd := range c.Nodes {
		for _, l := range nd.Logs {
			if keep != "" {
				if err := os.MkdirAll(keep, 0o755); err == nil {
					if b, err := os.ReadFile(l); err == nil {
						_ = os.WriteFile(filepath.Join(keep, filepath.Base(l)), b, 0o644)
					}
				}
			}
			if !c.t.Failed() {
				continue
			}
			b, err := os.ReadFile(l)
			if err != nil {
				c.t.Logf("%s: %v", l, err)
				continue
			}
			var lines []string
			for _, line := range strings.Split(string(b), "\n") {
				if pluginLogLine.MatchString(line) {
					lines = append(lines, line)
				}
			}
			if len(lines) > 150 {
				lines = lines[len(lines)-150:]
			}
			c.t.Logf("=== %s (%d relevant lines) ===\n%s", l, len(lines), strings.Join(lines, "\n"))
		}
	}
	if keep != "" {
		c.t.Logf("server logs copied to %s", keep)
	}
}
