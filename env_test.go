package tokenbroker

// The shared test environment: a backend on in-memory storage that can fail
// on demand, a settable clock, and a TLS fake provider that knows the test
// credentials. Tests and benchmarks build one with newEnv and talk to the
// backend through HandleRequest, as Vault does.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// Known test secrets: none may ever appear in a response, error, log line or config read.
const (
	testClientID     = "client-1"
	testClientSecret = "s3cret-client-secret"
	testAPIKey       = "s3cret-api-key"
)

// testStart is the clock's starting time in every env.
var testStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// clock is a settable time source shared by the backend and the fake provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t       testing.TB
	b       *backend
	storage *faultyStorage
	clock   *clock
	fake    *fakeprovider.Server
}

// newEnv starts a fake provider that accepts testClientID/testClientSecret
// and testAPIKey, and a backend whose clock is the fake's. Both stop when the
// test ends.
func newEnv(t testing.TB) *env {
	t.Helper()
	clk := &clock{t: testStart}
	fake := fakeprovider.New(fakeprovider.Options{TLS: true, Now: clk.Now})
	if err := fake.Start(); err != nil {
		t.Fatalf("start the fake provider: %v", err)
	}
	t.Cleanup(fake.Close)
	fake.AddClient(testClientID, testClientSecret)
	fake.AddAPIKey(testAPIKey)

	e := &env{t: t, storage: &faultyStorage{InmemStorage: &logical.InmemStorage{}}, clock: clk, fake: fake}
	e.b = e.startBackend()
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	return e
}

// startBackend builds and sets up a backend on e's storage and clock.
func (e *env) startBackend() *backend {
	e.t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	b := newBackend(conf)
	b.now = e.clock.Now
	if err := b.Setup(context.Background(), conf); err != nil {
		e.t.Fatalf("backend setup: %v", err)
	}
	return b
}

// restart replaces the backend with a new one on the same storage, as a
// process restart or a failover does: only what was stored survives. It
// first waits for any refresh in flight, and keeps the test's logger,
// persist retry delay and HTTP client factory.
func (e *env) restart() {
	e.t.Helper()
	old := e.b
	old.entries.Range(func(name, _ any) bool {
		e.settle(name.(string))
		return true
	})
	old.Cleanup(context.Background())
	e.b = e.startBackend()
	e.b.setLogger(old.logger)
	e.b.persistRetryDelay = old.persistRetryDelay
	e.b.newHTTPClient = old.newHTTPClient
}

// faultyStorage is InmemStorage that can also fail just the write that
// follows a rotation (a token state without the pending mark) while letting
// the mark written before the refresh through: storage failing at the worst moment.
type faultyStorage struct {
	*logical.InmemStorage
	failAfterRotation atomic.Bool
	// onPut, when set, sees every entry before it is written (or refused).
	onPut atomic.Pointer[func(*logical.StorageEntry)]
	// lists counts List calls; configLists those of config/ alone (the
	// background's own listings, of webhook/ or auth/, are not among them).
	lists, configLists atomic.Int64
	// onGet, when set, sees every key before it is read.
	onGet atomic.Pointer[func(key string)]
	// fail, when set, can fail a Put or Delete ("put", "delete") of a key.
	fail atomic.Pointer[func(op, key string) error]
}

func (s *faultyStorage) injected(op, key string) error {
	if f := s.fail.Load(); f != nil {
		return (*f)(op, key)
	}
	return nil
}

func (s *faultyStorage) Delete(ctx context.Context, key string) error {
	if err := s.injected("delete", key); err != nil {
		return err
	}
	return s.InmemStorage.Delete(ctx, key)
}

func (s *faultyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if f := s.onGet.Load(); f != nil {
		(*f)(key)
	}
	return s.InmemStorage.Get(ctx, key)
}

func (s *faultyStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.lists.Add(1)
	if prefix == configPrefix {
		s.configLists.Add(1)
	}
	return s.InmemStorage.List(ctx, prefix)
}

func (s *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if f := s.onPut.Load(); f != nil {
		(*f)(e)
	}
	if err := s.injected("put", e.Key); err != nil {
		return err
	}
	if s.failAfterRotation.Load() && strings.HasPrefix(e.Key, tokenPrefix) && !strings.Contains(string(e.Value), `"refresh_pending":true`) {
		return errors.New("injected: storage write failed after rotation")
	}
	return s.InmemStorage.Put(ctx, e)
}

// do runs one request through HandleRequest; an error response becomes err.
func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.b.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: e.storage})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	return resp, err
}

func (e *env) mustDo(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		e.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// config writes config/<name> for dialect against the fake provider, with
// the test credentials; extra adds or overrides fields, and a nil value
// deletes a default field.
func (e *env) config(name string, dialect fakeprovider.Dialect, extra map[string]any) {
	e.t.Helper()
	data := map[string]any{
		"provider":  string(dialect),
		"token_url": e.fake.URL() + dialect.TokenPath(),
		"ca_pem":    e.fake.CAPEM(),
	}
	switch dialect {
	case fakeprovider.APIVideo:
		data["api_key"] = testAPIKey
	default:
		data["client_id"], data["client_secret"] = testClientID, testClientSecret
	}
	e.mustDo(logical.CreateOperation, "config/"+name, withFields(data, extra))
}

// withFields returns a copy of base with change applied: a nil value deletes the key.
func withFields(base, change map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(change))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range change {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// creds reads creds/<name> with optional request data (min_ttl).
func (e *env) creds(name string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	return e.do(logical.ReadOperation, "creds/"+name, data)
}

// token reads creds/<name> and returns its access token; any error is fatal.
func (e *env) token(name string) string {
	e.t.Helper()
	resp := e.mustDo(logical.ReadOperation, "creds/"+name, nil)
	tok, _ := resp.Data["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("creds/%s: no access_token in %v", name, resp.Data)
	}
	return tok
}

// status reads status/<name>.
func (e *env) status(name string) map[string]any {
	e.t.Helper()
	return e.mustDo(logical.ReadOperation, "status/"+name, nil).Data
}

// settle waits for a background refresh of name, if one runs: Do joins an
// in-flight call for the same key.
func (e *env) settle(name string) {
	e.b.flight.Do(name, func() (any, error) { return nil, nil })
}

// periodic runs the background pass as Vault does, and waits for it.
func (e *env) periodic() error {
	if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage}); err != nil {
		return err
	}
	return e.b.loop.settle(e.b, 10*time.Second)
}

// standby makes the backend a performance standby: it cannot write storage.
func (e *env) standby() {
	e.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
}

// storedState is name's token state as storage holds it (nil: none).
func (e *env) storedState(name string) *tokenState {
	e.t.Helper()
	st, err := loadState(context.Background(), e.storage, name)
	if err != nil {
		e.t.Fatalf("load token state %q: %v", name, err)
	}
	return st
}

// storeState writes name's token state behind the backend's back, as
// another node or an earlier process would have.
func (e *env) storeState(name string, st *tokenState) {
	e.t.Helper()
	if err := stateEntries.save(context.Background(), e.storage, name, st); err != nil {
		e.t.Fatalf("write token state %q: %v", name, err)
	}
}

// storageDump is every stored config and token state, one per line.
func (e *env) storageDump() string {
	e.t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, prefix := range []string{configPrefix, tokenPrefix} {
		keys, err := e.storage.List(ctx, prefix)
		if err != nil {
			e.t.Fatalf("list %s: %v", prefix, err)
		}
		for _, k := range keys {
			entry, err := e.storage.Get(ctx, prefix+k)
			if err != nil {
				e.t.Fatalf("get %s%s: %v", prefix, k, err)
			}
			fmt.Fprintf(&b, "%s%s=%s\n", prefix, k, entry.Value)
		}
	}
	return b.String()
}

// expect fails the test unless got equals want.
func expect[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// expectField fails the test unless data[key] equals want, type included.
func expectField(t testing.TB, data map[string]any, key string, want any) {
	t.Helper()
	if got := data[key]; got != want {
		t.Fatalf("%s = %v (%T), want %v (%T); all fields: %v", key, got, got, want, want, data)
	}
}

// expectErr fails the test unless err is an error whose text contains want.
func expectErr(t testing.TB, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: err = %v, want an error containing %q", what, err, want)
	}
}
