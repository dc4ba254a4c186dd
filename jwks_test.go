package tokenbroker

// jwks/<name> is unauthenticated, so it is served from memory: the JWK Set is
// encoded when keys or configs are written (here, or on another node and
// invalidated), with Cache-Control and an ETag, and unknown names cost no
// storage access and keep nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// jwksRead reads jwks/<name> from b as Vault's HTTP layer would pass it on,
// with the request headers the mount lets through.
func (e *env) jwksRead(b *backend, name string, headers map[string][]string) (*logical.Response, error) {
	e.t.Helper()
	return b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
		Path: "jwks/" + name, Storage: e.storage, Headers: headers})
}

// jwksBodyOf is the raw body of a 200 answer of jwks/<name> from b.
func (e *env) jwksBodyOf(b *backend, name string) string {
	e.t.Helper()
	resp, err := e.jwksRead(b, name, nil)
	if err != nil || resp == nil || resp.Data[logical.HTTPStatusCode] != http.StatusOK {
		e.t.Fatalf("jwks/%s: %v %v, want a 200", name, resp, err)
	}
	return string(resp.Data[logical.HTTPRawBody].([]byte))
}

// jwksKeys lists the kid and alg of each key in a JWK Set body.
func jwksKeys(t testing.TB, body string) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("jwks body %q: %v", body, err)
	}
	out := []string{}
	for _, k := range set.Keys {
		out = append(out, k.Kid+" "+k.Alg)
	}
	return out
}

// countReads counts e's storage reads and lists from now on.
func (e *env) countReads() (reads func() int64) {
	var n atomic.Int64
	onGet := func(string) { n.Add(1) }
	e.storage.onGet.Store(&onGet)
	lists := e.storage.lists.Load()
	e.t.Cleanup(func() { e.storage.onGet.Store(nil) })
	return func() int64 { return n.Load() + e.storage.lists.Load() - lists }
}

// TestJWKSServedFromMemory: once a node has a name's keys (written here, or
// loaded by its first request after a start), jwks/<name> reads no storage.
func TestJWKSServedFromMemory(t *testing.T) {
	e := newEnv(t)
	e.configSigned("svc", "oauth2", map[string]any{"token_url": e.fake.URL() + fakeprovider.OAuth2.TokenPath(),
		"client_id": "svc", "generate_key": "ec-p256"})
	e.mustDo(logical.UpdateOperation, "key/svc/rotate", map[string]any{"generate_key": "rsa-2048"})

	reads := e.countReads()
	for range 20 {
		e.jwksBodyOf(e.b, "svc")
	}
	if n := reads(); n != 0 {
		t.Errorf("20 jwks reads after the keys were written read storage %d times, want 0", n)
	}

	e.restart()
	reads = e.countReads()
	e.jwksBodyOf(e.b, "svc")
	first := reads()
	for range 20 {
		e.jwksBodyOf(e.b, "svc")
	}
	if n := reads() - first; n != 0 || first == 0 {
		t.Errorf("after a restart: the first jwks read read storage %d times (want some), the next 20 %d (want 0)", first, n)
	}
}

// TestJWKSFollowsEveryKeyChange: after each change of a name's keys or
// config, what a running node serves from memory is exactly what a node
// that just started computes from storage.
func TestJWKSFollowsEveryKeyChange(t *testing.T) {
	e := newEnv(t)
	tokenURL := e.fake.URL() + fakeprovider.OAuth2.TokenPath()
	steps := []struct {
		name   string
		change func()
		keys   int // keys published after the change; 0: none (404)
	}{
		{"a config with a generated key", func() {
			e.configSigned("svc", "oauth2", map[string]any{"token_url": tokenURL, "client_id": "svc", "generate_key": "rsa-2048", "assertion_ttl": "5m"})
		}, 1},
		{"a next key added", func() {
			e.mustDo(logical.UpdateOperation, "key/svc/rotate", map[string]any{"generate_key": "ec-p256"})
		}, 2},
		{"the config's signing_alg changed", func() {
			e.mustDo(logical.UpdateOperation, "config/svc", map[string]any{"signing_alg": "PS256"})
		}, 2},
		{"the next key promoted", func() { e.mustDo(logical.UpdateOperation, "key/svc/promote", nil) }, 2},
		{"the previous key's publication over", func() { e.clock.Add(5*time.Minute + time.Second) }, 1},
		{"the current key replaced on the config", func() {
			e.mustDo(logical.UpdateOperation, "config/svc", map[string]any{"private_key": pkcs8PEM(testRSA)})
		}, 1},
		{"the key_id changed on the config", func() {
			e.mustDo(logical.UpdateOperation, "config/svc", map[string]any{"key_id": "kid-2"})
		}, 1},
		{"the config deleted", func() { e.mustDo(logical.DeleteOperation, "config/svc", nil) }, 0},
		{"the config written again", func() {
			e.configSigned("svc", "oauth2", map[string]any{"token_url": tokenURL, "client_id": "svc", "generate_key": "ec-p256"})
		}, 1},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			fresh := e.startBackend()
			defer fresh.Cleanup(context.Background())
			if step.keys == 0 {
				for which, b := range map[string]*backend{"running": e.b, "fresh": fresh} {
					if resp, err := e.jwksRead(b, "svc", nil); err == nil {
						t.Errorf("%s node: jwks/svc = %v, want a 404", which, resp)
					}
				}
				return
			}
			got, want := e.jwksBodyOf(e.b, "svc"), e.jwksBodyOf(fresh, "svc")
			if got != want {
				t.Fatalf("served from memory:\n%s\nwant what a node just started computes:\n%s", got, want)
			}
			if keys := jwksKeys(t, got); len(keys) != step.keys {
				t.Errorf("published keys %v, want %d", keys, step.keys)
			}
		})
	}
}

// TestJWKSAfterTheProviderPromotesTheNextKey: when a read promotes the next
// key (the provider refused the current one), jwks/<name> shows it at once.
func TestJWKSAfterTheProviderPromotesTheNextKey(t *testing.T) {
	e := newEnv(t)
	cert := func(data map[string]any, prefix string) {
		if err := e.fake.AddAssertionCertificate("ms-rot", certDER(t, data, prefix)); err != nil {
			t.Fatal(err)
		}
	}
	key := e.configSigned("ms", "microsoft", map[string]any{"token_url": e.fake.URL() + fakeprovider.MicrosoftTokenPath("t1"),
		"client_id": "ms-rot", "generate_key": "rsa-2048", "scopes": "https://graph.microsoft.com/.default"})
	cert(key, "")
	e.token("ms")
	rotated := e.mustDo(logical.UpdateOperation, "key/ms/rotate", map[string]any{"generate_key": "rsa-2048"}).Data
	before := e.jwksBodyOf(e.b, "ms")
	e.fake.RemoveAssertionKeys("ms-rot")
	cert(rotated, "next_")
	e.clock.Add(2 * time.Hour)
	e.token("ms") // the provider refuses the current key: the next one is promoted

	fresh := e.startBackend()
	defer fresh.Cleanup(context.Background())
	got, want := e.jwksBodyOf(e.b, "ms"), e.jwksBodyOf(fresh, "ms")
	if got != want || got == before {
		t.Fatalf("jwks after the automatic promotion:\n%s\nwant what a node just started computes:\n%s\n(before: %s)", got, want, before)
	}
	if keys := jwksKeys(t, got); len(keys) != 2 || keys[0] != rotated["next_key_id"].(string)+" PS256" {
		t.Errorf("published keys %v, want the promoted %s first, then the previous", keys, rotated["next_key_id"])
	}
}

// TestJWKSOnAStandby: a node that did not write the keys (a performance
// standby or secondary) serves what it loaded until Vault invalidates the
// entry another node wrote; then it serves the new set.
func TestJWKSOnAStandby(t *testing.T) {
	e := newEnv(t)
	tokenURL := e.fake.URL() + fakeprovider.OAuth2.TokenPath()
	e.configSigned("svc", "oauth2", map[string]any{"token_url": tokenURL, "client_id": "svc", "generate_key": "rsa-2048"})
	standby := e.startBackend()
	defer standby.Cleanup(context.Background())
	steps := []struct {
		name        string
		change      func()
		invalidated []string
		keys        int
	}{
		{"a next key added", func() {
			e.mustDo(logical.UpdateOperation, "key/svc/rotate", map[string]any{"generate_key": "ec-p256"})
		}, []string{keyPrefix + "svc"}, 2},
		{"the config's signing_alg changed", func() {
			e.mustDo(logical.UpdateOperation, "config/svc", map[string]any{"signing_alg": "PS256"})
		}, []string{configPrefix + "svc"}, 2},
		{"the config deleted", func() { e.mustDo(logical.DeleteOperation, "config/svc", nil) },
			[]string{tokenPrefix + "svc", keyPrefix + "svc", configPrefix + "svc"}, 0},
		{"keys written for a name the standby never saw", func() {
			e.configSigned("new", "oauth2", map[string]any{"token_url": tokenURL, "client_id": "new", "generate_key": "ec-p256"})
		}, []string{keyPrefix + "new", configPrefix + "new"}, 1},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			name := "svc"
			if step.name == "keys written for a name the standby never saw" {
				name = "new"
			}
			resp, _ := e.jwksRead(standby, name, nil) // what the standby has loaded before the change
			step.change()
			if again, _ := e.jwksRead(standby, name, nil); fmt.Sprint(again) != fmt.Sprint(resp) {
				t.Fatalf("the standby's answer changed before any invalidation: storage was read")
			}
			for _, key := range step.invalidated {
				standby.invalidate(context.Background(), key)
			}
			if step.keys == 0 {
				if resp, err := e.jwksRead(standby, name, nil); err == nil {
					t.Fatalf("jwks/%s on the standby after the invalidation = %v, want a 404", name, resp)
				}
				return
			}
			got, want := e.jwksBodyOf(standby, name), e.jwksBodyOf(e.b, name)
			if got != want || len(jwksKeys(t, got)) != step.keys {
				t.Fatalf("the standby after the invalidation serves\n%s\nwant the active node's (%d keys)\n%s", got, step.keys, want)
			}
		})
	}
}

// TestJWKSCachingHeaders: a JWK Set carries Cache-Control and a strong
// ETag; a matching If-None-Match (RFC 9110 §13.1.2) gets a 304 without a
// body, with the same headers; a changed set gets a new ETag.
func TestJWKSCachingHeaders(t *testing.T) {
	e := newEnv(t)
	e.configSigned("svc", "oauth2", map[string]any{"token_url": e.fake.URL() + fakeprovider.OAuth2.TokenPath(),
		"client_id": "svc", "generate_key": "ec-p256"})
	first, err := e.jwksRead(e.b, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	etag := first.Headers["ETag"]
	if len(etag) != 1 || len(etag[0]) < 20 || etag[0][0] != '"' {
		t.Fatalf("ETag %v, want one quoted strong entity tag", etag)
	}
	cases := []struct {
		name    string
		headers map[string][]string
		status  int
	}{
		{"no If-None-Match", nil, http.StatusOK},
		{"the ETag", map[string][]string{"If-None-Match": {etag[0]}}, http.StatusNotModified},
		{"the ETag, weak", map[string][]string{"If-None-Match": {"W/" + etag[0]}}, http.StatusNotModified},
		{"a list holding the ETag", map[string][]string{"If-None-Match": {`"other", ` + etag[0]}}, http.StatusNotModified},
		{"the ETag on a second header line", map[string][]string{"If-None-Match": {`"other"`, etag[0]}}, http.StatusNotModified},
		{"*", map[string][]string{"If-None-Match": {"*"}}, http.StatusNotModified},
		{"the header in lower case", map[string][]string{"if-none-match": {etag[0]}}, http.StatusNotModified},
		{"another ETag", map[string][]string{"If-None-Match": {`"other"`}}, http.StatusOK},
		{"the ETag unquoted", map[string][]string{"If-None-Match": {etag[0][1 : len(etag[0])-1]}}, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := e.jwksRead(e.b, "svc", c.headers)
			if err != nil {
				t.Fatal(err)
			}
			expectField(t, resp.Data, logical.HTTPStatusCode, any(c.status))
			expectField(t, resp.Data, logical.HTTPCacheControlHeader, any("public, max-age=300"))
			expectField(t, resp.Data, logical.HTTPContentType, any("application/json"))
			if got := resp.Headers["ETag"]; len(got) != 1 || got[0] != etag[0] {
				t.Errorf("ETag %v, want [%s]", got, etag[0])
			}
			body, hasBody := resp.Data[logical.HTTPRawBody]
			if hasBody != (c.status == http.StatusOK) {
				t.Errorf("status %d with a body: %v, want a body only with a 200", c.status, hasBody)
			}
			if hasBody && string(body.([]byte)) != string(first.Data[logical.HTTPRawBody].([]byte)) {
				t.Errorf("body %s, want %s", body, first.Data[logical.HTTPRawBody])
			}
		})
	}
	t.Run("a changed set", func(t *testing.T) {
		e.mustDo(logical.UpdateOperation, "key/svc/rotate", map[string]any{"generate_key": "ec-p256"})
		resp, err := e.jwksRead(e.b, "svc", map[string][]string{"If-None-Match": etag})
		if err != nil {
			t.Fatal(err)
		}
		expectField(t, resp.Data, logical.HTTPStatusCode, any(http.StatusOK))
		if got := resp.Headers["ETag"]; len(got) != 1 || got[0] == etag[0] {
			t.Errorf("ETag after a rotation %v, want a new one (was %s)", got, etag[0])
		}
	})
}

// TestJWKSUnknownNamesCostNothing: a flood of requests for names without
// keys (unknown, or configured without keys) is refused with a 404 that
// reads no storage, writes nothing and keeps nothing per name.
func TestJWKSUnknownNamesCostNothing(t *testing.T) {
	e := newEnv(t)
	e.configSigned("svc", "oauth2", map[string]any{"token_url": e.fake.URL() + fakeprovider.OAuth2.TokenPath(),
		"client_id": "svc", "generate_key": "ec-p256"})
	e.config("plain", fakeprovider.OAuth2, nil)
	e.restart() // nothing loaded: the first request lists the names with keys
	e.jwksBodyOf(e.b, "svc")

	var writes atomic.Int64
	onPut := func(*logical.StorageEntry) { writes.Add(1) }
	e.storage.onPut.Store(&onPut)
	defer e.storage.onPut.Store(nil)
	reads := e.countReads()
	entries := func() (n int) {
		e.b.jwks.docs.Range(func(any, any) bool { n++; return true })
		e.b.entries.Range(func(name, _ any) bool {
			if strings.HasPrefix(name.(string), "unknown-") {
				n++
			}
			return true
		})
		return n
	}
	entriesBefore := entries()
	flood := 100_000
	if raceEnabled {
		flood = 10_000
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range flood {
		name := fmt.Sprintf("unknown-%d", i)
		if i%10 == 0 {
			name = "plain"
		}
		if resp, err := e.jwksRead(e.b, name, nil); err == nil {
			t.Fatalf("jwks/%s = %v, want a 404", name, resp)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := reads(); n != 0 {
		t.Errorf("%d requests for names without keys read storage %d times, want 0", flood, n)
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("%d requests for names without keys wrote storage %d times, want 0", flood, n)
	}
	if n := entries(); n != entriesBefore {
		t.Errorf("per-name entries: %d before, %d after %d requests for names without keys", entriesBefore, n, flood)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Errorf("heap grew %d bytes over %d requests for names without keys, want under 1 MiB", grew, flood)
	}
}

// TestJWKSConcurrentReadsAndChanges: reads racing rotations, promotions and
// invalidations never fail, and once the changes stop the set served is the
// one a node just started computes.
func TestJWKSConcurrentReadsAndChanges(t *testing.T) {
	e := newEnv(t)
	e.configSigned("svc", "oauth2", map[string]any{"token_url": e.fake.URL() + fakeprovider.OAuth2.TokenPath(),
		"client_id": "svc", "generate_key": "ec-p256"})
	standby := e.startBackend()
	defer standby.Cleanup(context.Background())
	var stop atomic.Bool
	var failures atomic.Int64
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for !stop.Load() {
				for _, b := range []*backend{e.b, standby} {
					if resp, err := e.jwksRead(b, "svc", nil); err != nil || resp.Data[logical.HTTPStatusCode] != http.StatusOK {
						failures.Add(1)
					}
				}
			}
		}()
	}
	for i := range 20 {
		e.mustDo(logical.UpdateOperation, "key/svc/rotate", map[string]any{"generate_key": "ec-p256"})
		standby.invalidate(context.Background(), keyPrefix+"svc")
		if i%2 == 0 {
			e.mustDo(logical.UpdateOperation, "key/svc/promote", nil)
			standby.invalidate(context.Background(), keyPrefix+"svc")
		}
	}
	stop.Store(true)
	for range 4 {
		<-done
	}
	if n := failures.Load(); n != 0 {
		t.Errorf("%d jwks reads failed while the keys changed", n)
	}
	fresh := e.startBackend()
	defer fresh.Cleanup(context.Background())
	want := e.jwksBodyOf(fresh, "svc")
	for which, b := range map[string]*backend{"active": e.b, "standby": standby} {
		if got := e.jwksBodyOf(b, "svc"); got != want {
			t.Errorf("%s node serves\n%s\nwant what a node just started computes:\n%s", which, got, want)
		}
	}
}
