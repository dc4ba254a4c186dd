package tokenbroker

// In-process benchmarks and the upstream-economy count (bench/results.md
// reports both). The timed figures against a real Vault live in bench/ and run
// with `make bench`; nothing here is timed pass/fail, so it is safe in `make test`.

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// echoConfig registers clientID with the fake and writes config/<name> for
// the Echo360 dialect with it, so calls can be counted per name.
func (e *env) echoConfig(name, clientID string) {
	e.t.Helper()
	e.fake.AddClient(clientID, testClientSecret)
	e.config(name, fakeprovider.Echo360, map[string]any{"client_id": clientID})
}

// countingTransport counts token requests per client_id (Echo360 sends it in
// the form body of both grants), so calls can be told apart per name.
type countingTransport struct {
	base http.RoundTripper
	*callCounter
}

type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	id := req.URL.Query().Get("client_id")
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(body)
			body.Close()
			if form, err := url.ParseQuery(string(raw)); err == nil && form.Has("client_id") {
				id = form.Get("client_id")
			}
		}
	}
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
	return c.base.RoundTrip(req)
}

// TestUpstreamEconomy24h counts upstream calls over a simulated day: 100
// names with 1 h tokens and the default 5 min refresh_ahead, 24 simulated
// hours with the periodic pass run every simulated minute and reads in between. Each name may cost at most
// ceil(86400 / (3600 - 300)) + 1 = 28 upstream calls (the +1 is the first
// mint). With the refresh landing exactly on a minute tick the schedule gives
// 26 refreshes + 1 mint = 27, or 26 where the pass's per-name jitter delays
// refreshes; fewer would mean a refresh was skipped (and some read had to
// mint on expiry), so that is asserted too.
func TestUpstreamEconomy24h(t *testing.T) {
	const (
		names        = 100
		lifetime     = time.Hour
		refreshAhead = 5 * time.Minute // the default
		day          = 24 * time.Hour
		readsPerTick = 10
	)
	e := newEnv(t)
	e.fake.SetLifetime(lifetime)
	counter := &callCounter{n: map[string]int{}}
	e.b.newHTTPClient = func(caPEM string) (*http.Client, error) {
		c, err := provider.NewHTTPClient(caPEM)
		if err != nil {
			return nil, err
		}
		c.Transport = &countingTransport{base: c.Transport, callCounter: counter}
		return c, nil
	}
	for i := range names {
		e.echoConfig(fmt.Sprintf("econ-%03d", i), fmt.Sprintf("client-%03d", i))
	}
	start := e.clock.Now()
	for i := range names {
		e.mustDo(logical.ReadOperation, fmt.Sprintf("creds/econ-%03d", i), nil)
	}

	reads := 0
	for minute := 1; minute <= int(day/time.Minute); minute++ {
		e.clock.Add(time.Minute)
		now := e.clock.Now()
		for j := range readsPerTick {
			name := fmt.Sprintf("econ-%03d", (minute*readsPerTick+j)%names)
			resp := e.mustDo(logical.ReadOperation, "creds/"+name, nil)
			if exp, _ := resp.Data["expires_at_seconds"].(int64); exp-now.Unix() < int64(expiryLeeway/time.Second) {
				t.Fatalf("minute %d: %s served a token expiring at %d", minute, name, exp)
			}
			reads++
		}
		if err := e.periodic(); err != nil {
			t.Fatalf("minute %d: periodic pass: %v", minute, err)
		}
		for i := range names { // let every background refresh land before time moves on
			e.settle(fmt.Sprintf("econ-%03d", i))
		}
	}
	if got := e.clock.Now().Sub(start); got != day {
		t.Fatalf("simulated %s, want %s", got, day)
	}

	period := lifetime - refreshAhead
	ceiling := int(math.Ceil(float64(day)/float64(period))) + 1 // 28
	// The background pass delays each name by up to a quarter of its window
	// (passDelay), so a name may refresh up to that much later each time.
	floor := int(day/(period+refreshAhead/4)) + 1
	minCalls, maxCalls, total := math.MaxInt, 0, 0
	for i := range names {
		n := counter.n[fmt.Sprintf("client-%03d", i)]
		minCalls, maxCalls, total = min(minCalls, n), max(maxCalls, n), total+n
	}
	if total != e.fake.TotalCalls() {
		t.Errorf("counted %d calls per client but the fake saw %d", total, e.fake.TotalCalls())
	}
	if n := e.fake.RefreshReuses(); n != 0 {
		t.Errorf("refresh tokens reused %d times", n)
	}
	// One line the bench driver parses (bench/cmd/load reads `go test -v` output).
	t.Logf("ECONOMY names=%d reads=%d simulated=%s calls_per_name_min=%d calls_per_name_max=%d bound=%d expected=%d refresh_grants=%d",
		names, reads, day, minCalls, maxCalls, ceiling, floor, e.fake.Grants("refresh_token"))
	if maxCalls > ceiling || minCalls < floor {
		t.Fatalf("upstream calls per name in [%d, %d], want every name in [%d, %d]", minCalls, maxCalls, floor, ceiling)
	}
}

// BenchmarkCredsReadCached is the cached creds read through the framework's
// HandleRequest, as the plugin's gRPC server calls it.
func BenchmarkCredsReadCached(b *testing.B) { benchCachedRead(b, nil) }

// BenchmarkCredsReadCachedEnding is the same read of a chain whose renewal
// ends the token it serves (revokes_previous_token), outside its window.
func BenchmarkCredsReadCachedEnding(b *testing.B) {
	benchCachedRead(b, map[string]any{"revokes_previous_token": "on_new_token"})
}

// BenchmarkCredsReadNarrowedCached is a cached narrowed read (scope=read,
// one variant of the name, variants.go) beside BenchmarkCredsReadCached:
// the bound is within 10 % of it.
func BenchmarkCredsReadNarrowedCached(b *testing.B) {
	benchCachedReadOf(b, narrowedBenchConfig, "creds/x", map[string]any{"scope": "read"})
}

// BenchmarkRoleCredsReadCached is a cached read of a role's token
// (role/r/creds: the same variant, its request fixed by the role).
func BenchmarkRoleCredsReadCached(b *testing.B) {
	benchCachedReadOf(b, narrowedBenchConfig, "role/r/creds", nil)
}

// narrowedBenchConfig is the config of the narrowed benchmarks: an oauth2
// config (its grant takes a scope) with a role r of scope read.
var narrowedBenchConfig = map[string]any{"provider": "oauth2", "allowed_scopes": "read,write"}

func benchCachedRead(b *testing.B, fields map[string]any) {
	benchCachedReadOf(b, fields, "creds/x", nil)
}

// benchCachedReadOf benchmarks cached reads of path with data (nil: a
// plain read) on an Echo360 config x changed by fields.
func benchCachedReadOf(b *testing.B, fields map[string]any, path string, data map[string]any) {
	e := newEnv(b)
	e.fake.SetLifetime(time.Hour)
	dialect := fakeprovider.Echo360
	if fields["provider"] == "oauth2" {
		dialect = fakeprovider.OAuth2
	}
	e.config("x", dialect, fields)
	if dialect == fakeprovider.OAuth2 {
		e.mustDo(logical.CreateOperation, "role/r", map[string]any{"config": "x", "scope": "read"})
	}
	if _, err := e.do(logical.ReadOperation, path, data); err != nil { // mint once; every read below is cached
		b.Fatal(err)
	}
	calls := e.fake.TotalCalls()
	ctx := context.Background()
	read := func() {
		req := &logical.Request{Operation: logical.ReadOperation, Path: path, Storage: e.storage}
		if data != nil {
			req.Data = maps.Clone(data) // as the gRPC server decodes each request anew
		}
		resp, err := e.b.HandleRequest(ctx, req)
		if err != nil || resp == nil || resp.Data["access_token"] == nil {
			panic(fmt.Sprintf("cached read failed: %v %v", resp, err))
		}
	}
	serialAndParallel(b, read)
	if n := e.fake.TotalCalls(); n != calls {
		b.Fatalf("cached reads made %d upstream calls", n-calls)
	}
}

// BenchmarkNoopReadInProcess is the in-process floor for the benchmark above: the
// same framework routing to a handler that returns a constant map (the
// handler of bench/noop), so the difference is our handler's own cost.
func BenchmarkNoopReadInProcess(b *testing.B) {
	constData := map[string]any{
		"access_token": strings.Repeat("a", 46), "token_type": "Bearer",
		"expires_at": "2026-11-25T13:00:00Z", "expires_at_seconds": int64(1795611600),
		"rotation_period": int64(3600), "ttl": int64(3300),
	}
	nb := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "noop/" + framework.GenericNameRegex("name"),
			Fields:  map[string]*framework.FieldSchema{"name": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						return &logical.Response{Data: maps.Clone(constData)}, nil
					},
				},
			},
		}},
	}
	conf := logical.TestBackendConfig()
	storage := &logical.InmemStorage{}
	conf.StorageView = storage
	if err := nb.Setup(context.Background(), conf); err != nil {
		b.Fatalf("noop backend setup: %v", err)
	}
	ctx := context.Background()
	read := func() {
		resp, err := nb.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "noop/x", Storage: storage})
		if err != nil || resp == nil {
			panic(fmt.Sprintf("noop read failed: %v", err))
		}
	}
	serialAndParallel(b, read)
}

// serialAndParallel runs read as two sub-benchmarks: one goroutine, and GOMAXPROCS.
func serialAndParallel(b *testing.B, read func()) {
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			read()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				read()
			}
		})
	})
}
