//go:build e2e

// Package e2e runs the tokenbroker plugin inside a real Vault dev server (the
// pinned build in .cache/bin/vault), driven through the real `vault` CLI, against
// the in-process fake provider. Run it with `make test-e2e`, which builds the
// plugin, Vault and the fake provider first.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

const (
	pluginName    = "vault-plugin-secrets-tokenbroker"
	pluginVersion = "v0.2.0"
	mountPath     = "tokenbroker"

	cliTimeout     = 30 * time.Second // one `vault` CLI invocation
	startupTimeout = 60 * time.Second // Vault from exec to healthy
)

// binaries are the build outputs the suite runs.
type binaries struct {
	vault     string // .cache/bin/vault (scripts/build-vault.sh)
	plugin    string // bin/vault-plugin-secrets-tokenbroker (make build)
	pluginSHA string // contents of bin/vault-plugin-secrets-tokenbroker.sha256
}

// needBinaries finds the binaries, skipping the test when they are missing unless
// E2E_REQUIRED is set (CI sets it, so a missing binary fails there).
func needBinaries(t *testing.T) binaries {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b := binaries{
		vault:  filepath.Join(root, ".cache", "bin", "vault"),
		plugin: filepath.Join(root, "bin", pluginName),
	}
	shaFile := b.plugin + ".sha256"
	var missing []string
	for _, f := range []string{b.vault, b.plugin, shaFile} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("e2e binaries missing (%s); run `make test-e2e`", strings.Join(missing, ", "))
		if os.Getenv("E2E_REQUIRED") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sha, err := os.ReadFile(shaFile)
	if err != nil {
		t.Fatal(err)
	}
	b.pluginSHA = strings.TrimSpace(string(sha))
	return b
}

// Vault is one `vault server -dev` process, private to a test.
type Vault struct {
	t     *testing.T
	bin   binaries
	Addr  string // http://127.0.0.1:port
	Token string // root token
	Dir   string // private temp dir: plugins/, logs, files the test writes
	log   string // server log path
	proc  *proc
}

// StartVault starts a dev Vault on a free loopback port with its own plugin
// directory holding a copy of the plugin binary, and waits until it is healthy.
// The server (and the plugin processes it spawned) is stopped at test cleanup.
func StartVault(t *testing.T) *Vault {
	t.Helper()
	bin := needBinaries(t)
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, bin.plugin, filepath.Join(pluginDir, pluginName), 0o755)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken before Vault binds it
		v := &Vault{t: t, bin: bin, Dir: dir, Token: "root-" + randHex(t, 8),
			log: filepath.Join(dir, fmt.Sprintf("vault-%d.log", attempt))}
		if lastErr = v.start(pluginDir); lastErr == nil {
			return v
		}
	}
	t.Fatalf("starting Vault: %v", lastErr)
	return nil
}

func (v *Vault) start(pluginDir string) error {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(v.t))
	v.Addr = "http://" + listen
	p, err := startProc(v.t, v.log, v.env(), v.bin.vault, "server", "-dev", "-dev-no-store-token",
		"-dev-listen-address="+listen, "-dev-root-token-id="+v.Token,
		"-dev-plugin-dir="+pluginDir, "-dev-plugin-init=false",
		"-log-level=trace") // the secrets scan reads this log, plugin lines included
	if err != nil {
		return err
	}
	v.proc = p

	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+"/v1/sys/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("vault exited during startup:\n%s", tail(v.log, 20))
		case <-ctx.Done():
			p.stop()
			return fmt.Errorf("vault not healthy after %s:\n%s", startupTimeout, tail(v.log, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// proc is a child process in its own process group, logging to a file.
type proc struct {
	t    *testing.T
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// startProc starts bin with args in a new process group (so children it spawns,
// like plugin processes, are stopped with it) and stops it at test cleanup.
func startProc(t *testing.T, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{t: t, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p, nil
}

// stop sends SIGTERM to the process group, then SIGKILL after 5s. On a failed
// test it logs the tail of the process's output.
func (p *proc) stop() {
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers, e.g. plugin processes
		<-p.done
		if p.t.Failed() {
			p.t.Logf("%s log (%s):\n%s", filepath.Base(p.cmd.Path), p.log, tail(p.log, 40))
		}
	})
}

// env is the environment for the server and CLI: the caller's, minus any VAULT_*
// settings, plus this server's address and root token. HOME points into the test
// dir so no token helper file of the developer is read or written.
func (v *Vault) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+v.Dir, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token,
		"VAULT_LOG_LEVEL=info")
}

// Result is one CLI run.
type Result struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("vault %s → exit %d\nstdout: %s\nstderr: %s",
		strings.Join(r.Args, " "), r.Code, strings.TrimSpace(r.Stdout), strings.TrimSpace(r.Stderr))
}

// Run runs the vault CLI against this server with the root token.
func (v *Vault) Run(args ...string) Result { return v.RunAs(v.Token, args...) }

// RunAs runs the vault CLI with the given token.
func (v *Vault) RunAs(token string, args ...string) Result {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.bin.vault, args...)
	cmd.Env = append(v.env(), "VAULT_TOKEN="+token)
	cmd.Dir = v.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.Code = exitErr.ExitCode()
	default:
		v.t.Fatalf("vault %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		v.t.Fatalf("vault %s: timed out after %s", strings.Join(args, " "), cliTimeout)
	}
	return r
}

// Must runs the vault CLI with the root token and fails the test on a non-zero exit.
func (v *Vault) Must(args ...string) string {
	v.t.Helper()
	r := v.Run(args...)
	if r.Code != 0 {
		v.t.Fatalf("%s", r)
	}
	return r.Stdout
}

// JSON runs `vault <args> -format=json`-style commands (the caller passes the
// flag) and decodes stdout.
func (v *Vault) JSON(args ...string) map[string]any {
	v.t.Helper()
	out := v.Must(args...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		v.t.Fatalf("vault %s: decoding %q: %v", strings.Join(args, " "), out, err)
	}
	return m
}

// EnablePlugin registers the plugin the production way (pinned sha256 and
// version) and mounts it at tokenbroker/.
func (v *Vault) EnablePlugin() {
	v.t.Helper()
	v.Must("plugin", "register", "-sha256="+v.bin.pluginSHA, "-version="+pluginVersion, "secret", pluginName)
	v.Must("secrets", "enable", "-path="+mountPath, "-plugin-version="+pluginVersion, pluginName)
}

// StartVaultWithPlugin is StartVault + EnablePlugin.
func StartVaultWithPlugin(t *testing.T) *Vault {
	t.Helper()
	v := StartVault(t)
	v.EnablePlugin()
	return v
}

// WriteConfig writes tokenbroker/config/<name> with key=value args.
func (v *Vault) WriteConfig(name string, kv ...string) {
	v.t.Helper()
	v.Must(append([]string{"write", mountPath + "/config/" + name}, kv...)...)
}

// Creds is the data of a creds read.
type Creds struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresAt        time.Time `json:"expires_at"`
	ExpiresAtSeconds int64     `json:"expires_at_seconds"`
	RotationPeriod   int64     `json:"rotation_period"`
	TTL              int64     `json:"ttl"`
	LeaseID          string    `json:"-"`
	LeaseDuration    int64     `json:"-"`
}

// ReadCreds reads tokenbroker/creds/<name> with the root token.
func (v *Vault) ReadCreds(name string, extra ...string) Creds {
	v.t.Helper()
	args := append([]string{"read", "-format=json", mountPath + "/creds/" + name}, extra...)
	return decodeCreds(v.t, v.Must(args...))
}

func decodeCreds(t *testing.T, out string) Creds {
	t.Helper()
	var resp struct {
		LeaseID       string          `json:"lease_id"`
		LeaseDuration int64           `json:"lease_duration"`
		Data          json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("decoding creds response %q: %v", out, err)
	}
	var c Creds
	if err := json.Unmarshal(resp.Data, &c); err != nil {
		t.Fatalf("decoding creds data %s: %v", resp.Data, err)
	}
	c.LeaseID, c.LeaseDuration = resp.LeaseID, resp.LeaseDuration
	if c.AccessToken == "" {
		t.Fatalf("creds response has no access_token: %s", out)
	}
	return c
}

// ListConfigs lists tokenbroker/config/ (an empty list is nil).
func (v *Vault) ListConfigs() []string {
	v.t.Helper()
	r := v.Run("list", "-format=json", mountPath+"/config")
	if r.Code == 2 && strings.TrimSpace(r.Stdout) == "{}" { // the CLI's "nothing here"
		return nil
	}
	if r.Code != 0 {
		v.t.Fatalf("%s", r)
	}
	var keys []string
	if err := json.Unmarshal([]byte(r.Stdout), &keys); err != nil {
		v.t.Fatalf("decoding list %q: %v", r.Stdout, err)
	}
	return keys
}

// WriteFile writes content to a file in the Vault's temp dir and returns its path.
func (v *Vault) WriteFile(name, content string) string {
	v.t.Helper()
	p := filepath.Join(v.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		v.t.Fatal(err)
	}
	return p
}

// Fake is the in-process fake provider plus the CA file for ca_pem=@file.
type Fake struct {
	*fakeprovider.Server
	CAFile string
}

// Test credentials the fake accepts; distinctive so the audit test can grep for them.
const (
	fakeClientID     = "e2e-client"
	fakeClientSecret = "e2e-client-secret-5f3a9c"
	fakeAPIKey       = "e2e-api-key-8d21be"
)

// FakeOption sets one of the fake's switches before it serves: the
// in-process counterpart of cmd/fakeprovider's flags.
type FakeOption func(*fakeprovider.Server)

// withLatency is -latency: the fake sleeps d before each token answer.
func withLatency(d time.Duration) FakeOption {
	return func(s *fakeprovider.Server) { s.SetLatency(d) }
}

// withPreviousTokenRevocation is -previous-token-revocation: whether a new
// access token ends the ones issued before it.
func withPreviousTokenRevocation(m fakeprovider.PreviousTokenRevocation) FakeOption {
	return func(s *fakeprovider.Server) { s.SetPreviousTokenRevocation(m) }
}

// StartFake starts the fake provider over HTTPS on loopback with the test
// credentials registered and the given token lifetime (0: dialect defaults), writes its CA to a file, and closes it at cleanup.
// Options set switches before it serves; without any, its defaults hold.
func StartFake(t *testing.T, lifetime time.Duration, opts ...FakeOption) *Fake {
	t.Helper()
	return startFakeLogging(t, lifetime, t.Logf, opts...)
}

// startFakeLogging is StartFake with the fake's one-line-per-request log sent to logf.
func startFakeLogging(t *testing.T, lifetime time.Duration, logf func(string, ...any), opts ...FakeOption) *Fake {
	t.Helper()
	s := fakeprovider.New(fakeprovider.Options{TLS: true, Lifetime: lifetime, Logf: logf})
	for _, o := range opts {
		o(s)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("starting fake provider: %v", err)
	}
	t.Cleanup(s.Close)
	s.AddClient(fakeClientID, fakeClientSecret)
	s.AddAPIKey(fakeAPIKey)
	ca := filepath.Join(t.TempDir(), "fake-ca.pem")
	if err := os.WriteFile(ca, []byte(s.CAPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Fake{Server: s, CAFile: ca}
}

// dialect describes how to configure one provider dialect against the fake.
type dialect struct {
	provider string
	refresh  bool // the dialect issues refresh tokens that the plugin must use
}

var dialects = []dialect{
	{provider: "echo360", refresh: true},
	{provider: "apivideo", refresh: true},
	{provider: "endorsed"},
	{provider: "oauth2_json"},
	{provider: "oauth2"},
}

// ConfigArgs returns the `vault write tokenbroker/config/<name>` arguments that
// point a config of this dialect at the fake, plus any extra key=value pairs.
func (f *Fake) ConfigArgs(provider string, extra ...string) []string {
	u := f.URL()
	args := []string{"provider=" + provider, "ca_pem=@" + f.CAFile}
	switch provider {
	case "echo360":
		args = append(args, "token_url="+u+"/oauth2/access_token",
			"client_id="+fakeClientID, "client_secret="+fakeClientSecret)
	case "apivideo":
		args = append(args, "token_url="+u+"/auth/api-key", "refresh_url="+u+"/auth/refresh",
			"api_key="+fakeAPIKey)
	case "endorsed":
		args = append(args, "token_url="+u+"/api/v1/auth/tokens",
			"client_id="+fakeClientID, "client_secret="+fakeClientSecret)
	case "oauth2_json":
		args = append(args, "token_url="+u+"/oauth/token",
			"client_id="+fakeClientID, "client_secret="+fakeClientSecret)
	case "oauth2":
		args = append(args, "token_url="+u+"/oauth2/token",
			"client_id="+fakeClientID, "client_secret="+fakeClientSecret)
	default:
		panic("unknown provider " + provider)
	}
	return append(args, extra...)
}

// eventually polls cond every interval until it returns true or the timeout passes.
func eventually(t *testing.T, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// sleepUntil sleeps until the given time (no-op if it has passed).
func sleepUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// agentRun is a Vault Agent rendering one template to file.
type agentRun struct {
	agent *proc
	file  string
}

// startAgent starts Vault Agent with a token limited to reading
// tokenbroker/creds/agent, rendering contents to a file in v.Dir.
func startAgent(t *testing.T, v *Vault, contents string) agentRun {
	t.Helper()
	v.Must("policy", "write", "agent", v.WriteFile("agent-policy.hcl",
		`path "tokenbroker/creds/agent" { capabilities = ["read"] }`+"\n"))
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(v.Must("token", "create", "-format=json", "-policy=agent", "-ttl=30m")), &created); err != nil {
		t.Fatal(err)
	}
	tokenFile := v.WriteFile("agent-token", created.Auth.ClientToken)
	out := filepath.Join(v.Dir, "rendered")
	config := v.WriteFile("agent.hcl", fmt.Sprintf(`
vault {
  address = %q
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}
template_config {
  exit_on_retry_failure = true
}
template {
  contents    = %q
  destination = %q
}
`, v.Addr, tokenFile, contents, out))
	agent, err := startProc(t, filepath.Join(v.Dir, "agent.log"), v.env(), v.bin.vault,
		"agent", "-config="+config, "-log-level=debug")
	if err != nil {
		t.Fatal(err)
	}
	return agentRun{agent: agent, file: out}
}
