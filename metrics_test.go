package tokenbroker

// metrics/: the Prometheus exposition read through HandleRequest, its series
// after mints, refreshes, refusals and failures, the aggregate mode above
// metrics_max_names, promtool's lint, and the cost of a scrape.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// metricsBody reads metrics/ as Vault's HTTP layer would: a raw response with
// the exposition content type and status 200.
func metricsBody(e *env) []byte {
	e.t.Helper()
	resp := e.mustDo(logical.ReadOperation, "metrics", nil)
	if resp == nil {
		e.t.Fatal("metrics: no response")
	}
	expectField(e.t, resp.Data, logical.HTTPContentType, "text/plain; version=0.0.4; charset=utf-8")
	expectField(e.t, resp.Data, logical.HTTPStatusCode, http.StatusOK)
	body, ok := resp.Data[logical.HTTPRawBody].([]byte)
	if !ok || len(body) == 0 {
		e.t.Fatalf("metrics: raw body is %T (%d bytes)", resp.Data[logical.HTTPRawBody], len(body))
	}
	return body
}

// scrapeSeries parses a scrape into `name{label="value",...}` -> value, labels
// sorted by name; a histogram appears as its _count and _sum.
func scrapeSeries(e *env) map[string]float64 {
	e.t.Helper()
	body := metricsBody(e)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("metrics: not the text exposition format: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum{"+strings.Join(labels, ",")+"}"] = m.GetHistogram().GetSampleSum()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// expectSeries fails the test unless every series in want has its value.
func expectSeries(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("series %s missing; tokenbroker series present:\n%s", k, tokenbrokerSeries(got))
		case g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// eventuallySeries waits up to 10 s for the series in want to have their values.
func eventuallySeries(t *testing.T, e *env, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok := scrapeSeries(e), true
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok || time.Now().After(deadline) {
			expectSeries(t, got, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tokenbrokerSeries(got map[string]float64) string {
	var lines []string
	for k, v := range got {
		if strings.HasPrefix(k, "tokenbroker_") {
			lines = append(lines, fmt.Sprintf("  %s %v", k, v))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestMetricsAfterMintRefreshAndRefusal(t *testing.T) {
	e := newEnv(t)
	e.config("m", fakeprovider.Echo360, nil)
	e.token("m") // mint (waited)
	e.token("m") // cached
	e.clock.Add(2 * time.Hour)
	e.token("m") // refresh (waited)
	e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
	e.clock.Add(2 * time.Hour)
	resp := e.mustDo(logical.ReadOperation, "creds/m", nil) // refused refresh, then a mint (waited)
	expiry := resp.Data["expires_at_seconds"].(int64)

	got := scrapeSeries(e)
	expectSeries(t, got, map[string]float64{
		`tokenbroker_provider_requests_total{error="none",grant="client_credentials",name="m",outcome="success"}`:     2,
		`tokenbroker_provider_requests_total{error="none",grant="refresh_token",name="m",outcome="success"}`:          1,
		`tokenbroker_provider_requests_total{error="invalid_grant",grant="refresh_token",name="m",outcome="refused"}`: 1,
		`tokenbroker_provider_request_duration_seconds_count{grant="client_credentials"}`:                             2,
		`tokenbroker_provider_request_duration_seconds_count{grant="refresh_token"}`:                                  2,
		`tokenbroker_creds_reads_total{name="m",result="cached"}`:                                                     1,
		`tokenbroker_creds_reads_total{name="m",result="waited"}`:                                                     3,
		`tokenbroker_creds_reads_total{name="m",result="stale_served"}`:                                               0,
		`tokenbroker_creds_reads_total{name="m",result="failed"}`:                                                     0,
		`tokenbroker_singleflight_waiters_total{name="m"}`:                                                            0,
		`tokenbroker_access_token_expiry_timestamp_seconds{name="m"}`:                                                 float64(expiry),
		`tokenbroker_chain_needs_reauthorization{name="m"}`:                                                           0,
		`tokenbroker_chain_refresh_failing{name="m"}`:                                                                 0,
		`tokenbroker_state_persist_failures_total{}`:                                                                  0,
		`tokenbroker_build_info{version="` + Version + `"}`:                                                           1,
	})
	for _, absent := range []string{ // Echo360 announces no refresh-token expiry, and the config can mint
		`tokenbroker_refresh_token_expiry_timestamp_seconds{name="m"}`,
		`tokenbroker_chain_reauthorize_by_timestamp_seconds{name="m"}`,
	} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s present, want absent (unknown)", absent)
		}
	}

	// A provider outage: a min_ttl read is served the cached token, then
	// reads of an expired token fail; the name shows as failing.
	e.fake.Fail(2, fakeprovider.Fail500)
	e.clock.Add(10 * time.Minute) // 50 minutes left: a min_ttl of 52 asks for a new token
	if resp, err := e.creds("m", map[string]any{"min_ttl": "52m"}); err != nil || len(resp.Warnings) == 0 {
		t.Fatalf("min_ttl read during an outage: err=%v, want the cached token with a warning", err)
	}
	e.clock.Add(2 * time.Hour)
	if _, err := e.creds("m", nil); err == nil {
		t.Fatal("read of an expired token during an outage succeeded")
	}
	expectSeries(t, scrapeSeries(e), map[string]float64{
		`tokenbroker_provider_requests_total{error="server_error",grant="refresh_token",name="m",outcome="temporary"}`: 2,
		`tokenbroker_creds_reads_total{name="m",result="stale_served"}`:                                                1,
		`tokenbroker_creds_reads_total{name="m",result="failed"}`:                                                      1,
		`tokenbroker_chain_refresh_failing{name="m"}`:                                                                  1,
	})
}

// A chain that cannot mint: its refresh-token expiry and reauthorize_by are
// known once the provider announces them; a refused refresh makes it need
// reauthorization.
func TestMetricsChainThatCannotMint(t *testing.T) {
	e := newEnv(t)
	e.fake.SetRefreshTokenLifetime(30*24*time.Hour, fakeprovider.RefreshTokenExpiresIn)
	seedOnly := func(name string) {
		e.config(name, fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_token": e.fake.SeedRefreshToken(fakeprovider.Echo360, testClientID)})
	}
	seedOnly("s")
	e.token("s")
	rtExpiry := float64(e.clock.Now().Add(30 * 24 * time.Hour).Unix())
	expectSeries(t, scrapeSeries(e), map[string]float64{
		`tokenbroker_refresh_token_expiry_timestamp_seconds{name="s"}`: rtExpiry,
		`tokenbroker_chain_reauthorize_by_timestamp_seconds{name="s"}`: rtExpiry,
		`tokenbroker_chain_needs_reauthorization{name="s"}`:            0,
	})

	e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
	e.clock.Add(2 * time.Hour)
	if _, err := e.creds("s", nil); err == nil {
		t.Fatal("a refused seed-only chain served a token")
	}
	got := scrapeSeries(e)
	expectSeries(t, got, map[string]float64{
		`tokenbroker_chain_needs_reauthorization{name="s"}`:                                                           1,
		`tokenbroker_creds_reads_total{name="s",result="failed"}`:                                                     1,
		`tokenbroker_provider_requests_total{error="invalid_grant",grant="refresh_token",name="s",outcome="refused"}`: 1,
	})
	if _, ok := got[`tokenbroker_chain_reauthorize_by_timestamp_seconds{name="s"}`]; ok {
		t.Error("reauthorize_by still present after the chain was lost")
	}
}

// A config that only a user can connect is not an alert before its first
// authorization; once connected and then lost, it is.
func TestMetricsNeedsReauthorizationOnlyOnceConnected(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", map[string]any{"provider": "google"}) // Google's preset has no grant that mints for the client itself
	expectSeries(t, scrapeSeries(e), map[string]float64{`tokenbroker_chain_needs_reauthorization{name="u"}`: 0})

	e.connect("u")
	e.token("u")
	expectSeries(t, scrapeSeries(e), map[string]float64{
		`tokenbroker_chain_needs_reauthorization{name="u"}`:                                                       0,
		`tokenbroker_provider_requests_total{error="none",grant="authorization_code",name="u",outcome="success"}`: 1,
	})

	e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
	e.clock.Add(2 * time.Hour)
	if _, err := e.creds("u", nil); err == nil {
		t.Fatal("a connected chain the provider refused served a token")
	}
	expectSeries(t, scrapeSeries(e), map[string]float64{`tokenbroker_chain_needs_reauthorization{name="u"}`: 1})
}

// Reads that join another caller's upstream call count as waiters; the
// caller that made the call does not.
func TestMetricsSingleflightWaiters(t *testing.T) {
	e := newEnv(t)
	e.config("w", fakeprovider.Echo360, nil)
	e.token("w")
	e.clock.Add(2 * time.Hour)
	e.fake.SetLatency(300 * time.Millisecond)
	calls := e.fake.TotalCalls()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := e.creds("w", nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	expect(t, "upstream calls for 8 concurrent reads", e.fake.TotalCalls()-calls, 1)
	got := scrapeSeries(e)
	waited := got[`tokenbroker_creds_reads_total{name="w",result="waited"}`] - 1 // the first mint
	waiters := got[`tokenbroker_singleflight_waiters_total{name="w"}`]
	if waiters < 1 || waiters != waited-1 {
		t.Errorf("waiters = %v with %v reads that waited; want every waiting read but the caller", waiters, waited)
	}
}

func TestMetricsBackgroundPassAndPersistFailures(t *testing.T) {
	e := newEnv(t)
	e.config("b", fakeprovider.Echo360, nil)
	e.token("b")
	e.clock.Add(58 * time.Minute) // inside the refresh window, past the background jitter
	if err := e.periodic(); err != nil {
		t.Fatal(err)
	}
	eventuallySeries(t, e, map[string]float64{ // the background may refresh after periodic returns
		`tokenbroker_background_refreshes_total{outcome="success"}`: 1,
		`tokenbroker_background_refreshes_total{outcome="refused"}`: 0,
		`tokenbroker_background_pass_duration_seconds_count{}`:      1,
	})
	e.settle("b")

	e.b.persistRetryDelay = time.Millisecond
	e.storage.failAfterRotation.Store(true)
	e.clock.Add(2 * time.Hour)
	if _, err := e.creds("b", nil); err == nil {
		t.Fatal("the read hid a failed state write")
	}
	e.storage.failAfterRotation.Store(false)
	expectSeries(t, scrapeSeries(e), map[string]float64{`tokenbroker_state_persist_failures_total{}`: 1})
}

// With more names than metrics_max_names, no series carries a name: counters
// are summed, 0/1 gauges count names, timestamps are the earliest.
func TestMetricsAggregateAboveMaxNames(t *testing.T) {
	e := newEnv(t)
	e.config("a", fakeprovider.Echo360, nil)
	e.config("b", fakeprovider.Echo360, nil)
	e.token("a")
	e.clock.Add(10 * time.Minute)
	e.token("b")
	e.token("b")
	if got := scrapeSeries(e); got[`tokenbroker_creds_reads_total{name="a",result="waited"}`] != 1 {
		t.Fatalf("per-name series missing below the limit:\n%s", tokenbrokerSeries(got))
	}

	e.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_max_names": 1})
	got := scrapeSeries(e)
	expectSeries(t, got, map[string]float64{
		`tokenbroker_creds_reads_total{result="waited"}`:                                                 2,
		`tokenbroker_creds_reads_total{result="cached"}`:                                                 1,
		`tokenbroker_provider_requests_total{error="none",grant="client_credentials",outcome="success"}`: 2,
		`tokenbroker_chain_needs_reauthorization{}`:                                                      0,
		`tokenbroker_access_token_expiry_timestamp_seconds{}`:                                            float64(testStart.Add(time.Hour).Unix()),
	})
	for k := range got {
		if strings.HasPrefix(k, "tokenbroker_") && strings.Contains(k, "name=") {
			t.Errorf("aggregate mode, yet %s carries a name", k)
		}
	}
}

// TestMetricsWhileTheLoopLoads: right after a start or reload, while the
// refresh loop loads every stored name, a scrape reports the names loaded so
// far instead of loading the rest itself (at 100 000 names that took longer
// than a scrape's timeout); once loaded, every name is back.
func TestMetricsWhileTheLoopLoads(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"a", "b", "z"} {
		e.config(name, fakeprovider.Echo360, nil)
		e.token(name)
	}
	e.restart()
	release := make(chan struct{})
	hold := func(key string) {
		if key == configPrefix+"z" {
			select { // a scrape that loads z itself waits here, then reports it
			case <-release:
			case <-time.After(3 * time.Second):
			}
		}
	}
	e.storage.onGet.Store(&hold)
	e.b.loop.start(e.b) // as the mount's initialisation does; loads a, b, then waits on z
	deadline := time.Now().Add(10 * time.Second)
	for e.b.loaded("b") == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	expiry := float64(testStart.Add(time.Hour).Unix())
	got := scrapeSeries(e)
	expectSeries(t, got, map[string]float64{
		`tokenbroker_access_token_expiry_timestamp_seconds{name="a"}`: expiry,
		`tokenbroker_access_token_expiry_timestamp_seconds{name="b"}`: expiry,
	})
	if _, ok := got[`tokenbroker_access_token_expiry_timestamp_seconds{name="z"}`]; ok {
		t.Errorf("a scrape while the loop loads reports z, which only the scrape itself could have loaded")
	}
	close(release)
	if err := e.periodic(); err != nil {
		t.Fatalf("periodic: %v", err)
	}
	expectSeries(t, scrapeSeries(e), map[string]float64{`tokenbroker_access_token_expiry_timestamp_seconds{name="z"}`: expiry})
}

// promtool, Prometheus's own linter, finds nothing to say about a scrape
// holding every family. CI installs promtool; elsewhere the test skips
// without it.
func TestMetricsPromtoolCheck(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("E2E_REQUIRED") != "" {
			t.Fatal("promtool is not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool is not installed")
	}
	e := newEnv(t)
	e.fake.SetRefreshTokenLifetime(30*24*time.Hour, fakeprovider.RefreshTokenExpiresIn)
	e.config("p", fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_token": e.fake.SeedRefreshToken(fakeprovider.Echo360, testClientID)})
	e.token("p")
	e.config("q", fakeprovider.Echo360, nil)
	e.token("q")
	e.fake.Fail(1, fakeprovider.Fail500)
	e.clock.Add(2 * time.Hour)
	_, _ = e.creds("q", nil)
	if err := e.periodic(); err != nil {
		t.Fatal(err)
	}
	body := metricsBody(e)
	for _, family := range []string{"tokenbroker_provider_requests_total", "tokenbroker_chain_reauthorize_by_timestamp_seconds", "tokenbroker_background_pass_duration_seconds_bucket"} {
		if !bytes.Contains(body, []byte(family)) {
			t.Fatalf("the scrape lacks %s:\n%s", family, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// BenchmarkMetricsScrape is one scrape of a mount with 2000 names (the
// default metrics_max_names, so every series carries its name), each with a
// cached token, a refresh token with a known expiry, read counts and two
// kinds of provider request.
func BenchmarkMetricsScrape(b *testing.B) {
	const names = defaultMetricsMaxNames
	e := newEnv(b)
	ctx := context.Background()
	now := e.clock.Now()
	for i := range names {
		name := fmt.Sprintf("name-%04d", i)
		cfg := newProviderConfig()
		cfg.Provider, cfg.TokenURL, cfg.ClientID, cfg.ClientSecret, cfg.CAPEM =
			provider.Echo360, e.fake.URL()+fakeprovider.Echo360.TokenPath(), testClientID, testClientSecret, e.fake.CAPEM()
		if err := configEntries.save(ctx, e.storage, name, cfg); err != nil {
			b.Fatal(err)
		}
		e.storeState(name, &tokenState{AccessToken: "at-" + name, TokenType: "Bearer", IssuedAt: now, ExpiresAt: now.Add(time.Hour),
			RefreshToken: "rt-" + name, RefreshExpiresAt: now.Add(30 * 24 * time.Hour), Grant: provider.GrantRefreshToken})
		c := e.b.counters(name)
		c.reads[readCached].Add(1000)
		c.reads[readWaited].Add(3)
		e.b.metrics.providerCall(c, provider.GrantClientCredentials, 40*time.Millisecond, nil, nil)
		e.b.metrics.providerCall(c, provider.GrantRefreshToken, 60*time.Millisecond,
			&provider.Error{Class: provider.Refused, Status: http.StatusBadRequest, Code: "invalid_grant"}, nil)
	}
	first := metricsBody(e) // loads every snapshot, as the background pass would have
	if !bytes.Contains(first, []byte(`name="name-1999"`)) {
		b.Fatal("the scrape has no per-name series")
	}
	b.Logf("one scrape of %d names: %d bytes, %d lines", names, len(first), bytes.Count(first, []byte("\n")))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "metrics", Storage: e.storage})
		if err != nil || resp == nil {
			b.Fatalf("scrape: %v", err)
		}
	}
}

// BenchmarkMetricsCountRead is what metrics add to a cached creds read: one
// atomic add on the name's counters, alone and from every core at once on one
// name (the contended case).
func BenchmarkMetricsCountRead(b *testing.B) {
	c := new(nameCounters)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.read(readCached)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.read(readCached)
			}
		})
	})
}
