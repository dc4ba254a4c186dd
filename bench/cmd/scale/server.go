package main

// The Vault under test: one `vault server -config` with integrated (raft)
// storage on loopback, in its own process group (so stopping the group stops
// the plugin processes too), initialised with one unseal key, unsealed, the
// plugin registered by sha256 and mounted at tokenbroker/. Its pid is written
// to <work>/vault.pid, so scale.sh can stop the group should this driver die.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	pluginName = "vault-plugin-secrets-tokenbroker"
	mount      = "tokenbroker"
)

type server struct {
	bin, dir    string
	addr, token string
	cmd         *exec.Cmd
	exited      chan struct{}
}

// startServer starts, initialises and unseals Vault and mounts the plugin. A
// non-nil server is returned whenever a process was started, for the caller
// to stop.
func startServer(ctx context.Context, cfg config) (*server, error) {
	s := &server{bin: cfg.vaultBin, dir: cfg.workDir}
	pluginDir, dataDir := filepath.Join(s.dir, "plugins"), filepath.Join(s.dir, "raft")
	for _, dir := range []string{pluginDir, dataDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	sha, err := installPlugin(cfg.pluginBin, filepath.Join(pluginDir, pluginName))
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ { // a free port may be taken before Vault binds it
		err = s.launch(ctx, pluginDir, dataDir)
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
		logf("starting Vault (attempt %d): %v", attempt, err)
		s.stop()
	}
	if err != nil {
		return s, err
	}

	out, err := s.cli(ctx, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if err != nil {
		return s, err
	}
	var initOut struct {
		Keys  []string `json:"unseal_keys_b64"`
		Token string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &initOut); err != nil || len(initOut.Keys) != 1 || initOut.Token == "" {
		return s, fmt.Errorf("operator init: unexpected output (%v)", err)
	}
	s.token = initOut.Token
	if _, err := s.cli(ctx, "operator", "unseal", initOut.Keys[0]); err != nil {
		return s, err
	}
	if err := s.waitHealth(ctx, http.StatusOK, time.Minute); err != nil {
		return s, fmt.Errorf("becoming active after unseal: %w", err)
	}
	register := []string{"plugin", "register", "-sha256=" + sha}
	enable := []string{"secrets", "enable", "-path=" + mount}
	if cfg.pluginVersion != "" {
		register = append(register, "-version="+cfg.pluginVersion)
		enable = append(enable, "-plugin-version="+cfg.pluginVersion)
	}
	for _, kv := range cfg.pluginEnv {
		register = append(register, "-env="+kv)
	}
	for _, args := range [][]string{append(register, "secret", pluginName), append(enable, pluginName)} {
		if _, err := s.cli(ctx, args...); err != nil {
			return s, err
		}
	}
	return s, nil
}

// installPlugin copies the plugin binary to dst and returns its sha256.
func installPlugin(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("the plugin binary: %w (run `make build`)", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return hex.EncodeToString(h.Sum(nil)), err
}

// launch writes the server config on two free loopback ports, starts the
// server and waits until its API answers (sealed, not initialised).
func (s *server) launch(ctx context.Context, pluginDir, dataDir string) error {
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	clusterPort, err := freePort()
	if err != nil {
		return err
	}
	s.addr = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	hcl := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = "scale-1"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = %q
cluster_addr     = "https://127.0.0.1:%d"
disable_mlock    = true
plugin_directory = %q
ui               = false
`, dataDir, apiPort, clusterPort, s.addr, clusterPort, pluginDir)
	confPath := filepath.Join(s.dir, "vault.hcl")
	if err := os.WriteFile(confPath, []byte(hcl), 0o600); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(s.dir, "vault.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.cmd = exec.Command(s.bin, "server", "-config="+confPath)
	s.cmd.Env = s.env()
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)
	_ = os.WriteFile(filepath.Join(s.dir, "vault.pid"), []byte(strconv.Itoa(s.cmd.Process.Pid)), 0o600)
	return s.waitHealth(ctx, 0, time.Minute)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHealth waits until sys/health answers want (0: any status) while the
// server runs.
func (s *server) waitHealth(ctx context.Context, want int, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		resp, err := hc.Get(s.addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if want == 0 || resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		}
		select {
		case <-s.exited:
			return fmt.Errorf("vault exited; see vault.log:\n%s", tailFile(filepath.Join(s.dir, "vault.log"), 15))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sys/health after %s: %s", timeout, last)
		}
	}
}

// env is this process's environment without VAULT_* variables, plus the
// address and token of the server under test.
func (s *server) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "VAULT_ADDR="+s.addr)
	if s.token != "" {
		env = append(env, "VAULT_TOKEN="+s.token)
	}
	return env
}

// cli runs the Vault CLI against the server, bounded to two minutes.
func (s *server) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vault %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// version is the server's `vault version`, without the build date.
func (s *server) version(ctx context.Context) string {
	out, err := s.cli(ctx, "version")
	if err != nil {
		return "Vault (version unknown)"
	}
	v, _, _ := strings.Cut(strings.TrimSpace(out), ", built")
	return v
}

// logSize is the size of Vault's log file so far.
func (s *server) logSize() int64 {
	fi, err := os.Stat(filepath.Join(s.dir, "vault.log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// pid is the Vault server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM to the server's process group, waits up to 15 s, then
// SIGKILLs what is left of the group (plugin processes included).
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		logf("stopping Vault's process group %d: %v", pgid, err)
	}
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
	_ = os.Remove(filepath.Join(s.dir, "vault.pid"))
	s.cmd = nil
}

// tailFile returns the last n lines of path.
func tailFile(path string, n int) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
