//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

const (
	promStartup = 30 * time.Second // Prometheus from exec to ready
	promSettle  = 60 * time.Second // scrapes and queries reaching the expected values
)

// A real Prometheus (Debian's package) scrapes a real Vault with the plugin:
// after a mint, a refresh and a refused refresh, its query API returns the
// series and values the plugin counted; a token without the metrics policy
// gets 403 from Vault, and Prometheus shows that target down.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	t.Parallel()
	promBin := needPrometheus(t)
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)

	allowed := v.tokenWithPolicy("metrics", `path "tokenbroker/metrics" { capabilities = ["read"] }`)
	denied := v.tokenWithPolicy("creds-only", `path "tokenbroker/creds/*" { capabilities = ["read"] }`)
	metricsURL := v.Addr + "/v1/" + mountPath + "/metrics"
	if code, _, _ := httpGet(t, metricsURL, denied); code != http.StatusForbidden {
		t.Fatalf("metrics with a token lacking the policy: HTTP %d, want 403", code)
	}

	prom := startPrometheus(t, promBin, v.Addr, map[string]string{"tokenbroker": allowed, "tokenbroker-denied": denied})

	// m can mint: a mint, a refresh, a refused refresh (then a mint in the same
	// read), a cached read. Evicting the access token keeps the refresh token,
	// so the read after an eviction refreshes.
	v.WriteConfig("m", fake.ConfigArgs("echo360")...)
	v.ReadCreds("m")
	v.Must("delete", mountPath+"/creds/m")
	v.ReadCreds("m")
	fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
	v.Must("delete", mountPath+"/creds/m")
	v.ReadCreds("m")
	last := v.ReadCreds("m")
	// s holds a seed only: once its refresh is refused, it needs an operator.
	v.WriteConfig("s", "provider=echo360", "ca_pem=@"+fake.CAFile, "token_url="+fake.URL()+"/oauth2/access_token",
		"client_id="+fakeClientID, "refresh_token="+fake.SeedRefreshToken(fakeprovider.Echo360, fakeClientID))
	fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
	if r := v.Run("read", mountPath+"/creds/s"); r.Code == 0 || !strings.Contains(r.Stderr, "refresh_token") {
		t.Fatalf("a refused seed-only chain: %s", r)
	}

	code, ctype, body := httpGet(t, metricsURL, allowed)
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") || !strings.Contains(body, "# TYPE tokenbroker_creds_reads_total counter") {
		t.Fatalf("metrics with the metrics policy: HTTP %d, Content-Type %q, body:\n%s", code, ctype, body)
	}

	sel := `job="tokenbroker",`
	want := map[string]float64{
		`tokenbroker_provider_requests_total{` + sel + `name="m",grant="client_credentials",outcome="success",error="none"}`:     2,
		`tokenbroker_provider_requests_total{` + sel + `name="m",grant="refresh_token",outcome="success",error="none"}`:          1,
		`tokenbroker_provider_requests_total{` + sel + `name="m",grant="refresh_token",outcome="refused",error="invalid_grant"}`: 1,
		`tokenbroker_provider_requests_total{` + sel + `name="s",grant="refresh_token",outcome="refused",error="invalid_grant"}`: 1,
		`tokenbroker_creds_reads_total{` + sel + `name="m",result="waited"}`:                                                     3,
		`tokenbroker_creds_reads_total{` + sel + `name="m",result="cached"}`:                                                     1,
		`tokenbroker_creds_reads_total{` + sel + `name="s",result="failed"}`:                                                     1,
		`tokenbroker_access_token_expiry_timestamp_seconds{` + sel + `name="m"}`:                                                 float64(last.ExpiresAtSeconds),
		`tokenbroker_chain_needs_reauthorization{` + sel + `name="m"}`:                                                           0,
		`tokenbroker_chain_needs_reauthorization{` + sel + `name="s"}`:                                                           1,
		`sum(tokenbroker_provider_request_duration_seconds_count{` + sel + `grant="refresh_token"})`:                             3,
		`tokenbroker_build_info{` + sel + `version="` + pluginVersion + `"}`:                                                     1,
		`up{job="tokenbroker"}`:        1,
		`up{job="tokenbroker-denied"}`: 0,
	}
	deadline := time.Now().Add(promSettle)
	for query, value := range want {
		for {
			got, err := prom.query(query)
			if err == nil && got == value {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus query %s = %v (%v), want %v", query, got, err, value)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	targets := prom.targets()
	if tg := targets["tokenbroker"]; tg.Health != "up" {
		t.Errorf("target of the metrics token: health %q, error %q", tg.Health, tg.LastError)
	}
	if tg := targets["tokenbroker-denied"]; tg.Health != "down" || !strings.Contains(tg.LastError, "403") {
		t.Errorf("target of the token without the metrics policy: health %q, error %q; want down with a 403", tg.Health, tg.LastError)
	}
}

// needPrometheus finds Debian's prometheus binary, skipping the test when it
// is missing unless E2E_REQUIRED is set (.ci/run installs it).
func needPrometheus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("E2E_REQUIRED") != "" {
			t.Fatal("prometheus is not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus)")
	}
	return bin
}

// tokenWithPolicy writes policy name from hcl and returns a new token holding only it.
func (v *Vault) tokenWithPolicy(name, hcl string) string {
	v.t.Helper()
	v.Must("policy", "write", name, v.WriteFile(name+".hcl", hcl+"\n"))
	var created struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	out := v.Must("token", "create", "-format=json", "-policy="+name, "-ttl=30m")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Auth.ClientToken == "" {
		v.t.Fatalf("token create: %v %s", err, out)
	}
	return created.Auth.ClientToken
}

// httpGet sends GET with a Vault token as Prometheus does (Authorization: Bearer).
func httpGet(t *testing.T, u, token string) (code int, contentType, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// promServer is a Prometheus server private to a test.
type promServer struct {
	t    *testing.T
	addr string // http://127.0.0.1:port
}

// startPrometheus starts Prometheus on a free loopback port with its own
// storage dir, scraping vaultAddr's metrics path every second with one job
// per token (job name -> Vault token, each in a credentials file). It is
// stopped at test cleanup.
func startPrometheus(t *testing.T, bin, vaultAddr string, jobs map[string]string) *promServer {
	t.Helper()
	dir := t.TempDir()
	target := strings.TrimPrefix(vaultAddr, "http://")
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for job, token := range jobs {
		cred := filepath.Join(dir, job+".token")
		if err := os.WriteFile(cred, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		// The same settings README's Monitoring section shows.
		fmt.Fprintf(&cfg, "  - job_name: %s\n    metrics_path: /v1/%s/metrics\n    authorization:\n      credentials_file: %s\n    static_configs:\n      - targets: ['%s']\n",
			job, mountPath, cred, target)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken before Prometheus binds it
		p := &promServer{t: t, addr: fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
		logPath := filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt))
		proc, err := startProc(t, logPath, os.Environ(), bin,
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--web.listen-address="+strings.TrimPrefix(p.addr, "http://"),
			"--log.level=warn")
		if err != nil {
			t.Fatalf("starting prometheus: %v", err)
		}
		if lastErr = p.waitReady(proc); lastErr == nil {
			return p
		}
		proc.stop()
	}
	t.Fatalf("starting prometheus: %v", lastErr)
	return nil
}

func (p *promServer) waitReady(proc *proc) error {
	deadline := time.Now().Add(promStartup)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-proc.done:
			return fmt.Errorf("prometheus exited during startup:\n%s", tail(proc.log, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("prometheus not ready after %s:\n%s", promStartup, tail(proc.log, 20))
}

// api GETs a Prometheus HTTP API path and decodes its data field into out.
func (p *promServer) api(path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.addr+path+"?"+params.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&envelope); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("%s: %s", path, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, out)
}

// query evaluates an instant query that must return exactly one sample.
func (p *promServer) query(q string) (float64, error) {
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return 0, err
	}
	if len(data.Result) != 1 {
		return 0, fmt.Errorf("%d samples", len(data.Result))
	}
	s, _ := data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

type promTarget struct {
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// targets returns the active scrape targets by job.
func (p *promServer) targets() map[string]promTarget {
	p.t.Helper()
	var data struct {
		ActiveTargets []struct {
			promTarget
			Labels map[string]string `json:"labels"`
		} `json:"activeTargets"`
	}
	if err := p.api("/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		p.t.Fatalf("targets: %v", err)
	}
	out := map[string]promTarget{}
	for _, tg := range data.ActiveTargets {
		out[tg.Labels["job"]] = tg.promTarget
	}
	return out
}
