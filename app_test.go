package tokenbroker

// Apps and their connections (app.go, path_app.go): a connection holds its
// chain alone and reads its client from its app, so an app write is one
// write for all its connections.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// app writes app/<name> for dialect against the fake, with the test
// credentials; extra adds or overrides fields (nil deletes one).
func (e *env) app(name string, dialect fakeprovider.Dialect, extra map[string]any) {
	e.t.Helper()
	data := map[string]any{"provider": string(dialect), "token_url": e.fake.URL() + dialect.TokenPath(), "ca_pem": e.fake.CAPEM(),
		"client_id": testClientID, "client_secret": testClientSecret}
	e.mustDo(logical.CreateOperation, "app/"+name, withFields(data, extra))
}

// connections lists app/<app>/connections with paging data.
func (e *env) connections(app string, data map[string]any) *logical.Response {
	e.t.Helper()
	return e.mustDo(logical.ListOperation, "app/"+app+"/connections", data)
}

// TestConnectionUsesItsAppsClient: a connection made by hand mints with its
// app's client; its stored entry and its read hold the app's name and its
// chain, never the client.
func TestConnectionUsesItsAppsClient(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, map[string]any{"scopes": "read"})
	e.mustDo(logical.CreateOperation, "config/crm-batch", map[string]any{"app": "crm"})
	tok := e.token("crm-batch")
	if tok == "" {
		t.Fatal("no token")
	}
	stored, err := configEntries.load(t.Context(), e.storage, "crm-batch")
	if err != nil {
		t.Fatal(err)
	}
	if got := *stored; got.App != "crm" || got.ClientID != "" || got.ClientSecret != "" || got.TokenURL != "" || len(got.Scopes) != 0 {
		t.Errorf("stored connection = %+v, want only its app", got)
	}
	read := e.mustDo(logical.ReadOperation, "config/crm-batch", nil).Data
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range read {
			if !yield(k) {
				return
			}
		}
	})
	expect(t, "config read keys", strings.Join(keys, " "), "app needs_refresh_token refresh_token_set schema_version")
	expectField(t, read, "app", "crm")
	app := e.mustDo(logical.ReadOperation, "app/crm", nil).Data
	if _, shown := app["client_secret"]; shown || app["client_secret_set"] != true {
		t.Errorf("app read = %v, want client_secret_set and no secret", app)
	}
	for _, chainKey := range []string{"refresh_token_set", "needs_refresh_token", "app"} {
		if _, shown := app[chainKey]; shown {
			t.Errorf("app read shows %s, a connection's", chainKey)
		}
	}
	expect(t, "LIST app/", fmt.Sprint(e.mustDo(logical.ListOperation, "app/", nil).Data["keys"]), "[crm]")
}

// TestConnectionWritesRefused: a connection takes only app and a seed;
// everything of the client is the app's, and each refusal changes nothing.
func TestConnectionWritesRefused(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, nil)
	e.config("plain", fakeprovider.OAuth2, nil)
	e.mustDo(logical.CreateOperation, "config/conn", map[string]any{"app": "crm"})
	e.mustDo(logical.CreateOperation, "app/other", map[string]any{"provider": "oauth2", "token_url": e.fake.URL() + fakeprovider.PathOAuth2Token,
		"ca_pem": e.fake.CAPEM(), "client_id": testClientID, "client_secret": testClientSecret})
	cases := []struct {
		name, path string
		data       map[string]any
		want       string
	}{
		{"client fields on a connection", "config/c2", map[string]any{"app": "crm", "client_secret": "x", "scopes": "a"},
			`client_secret, scopes: a connection takes its client from app "crm"; write these to app/crm`},
		{"client fields on an existing connection", "config/conn", map[string]any{"token_url": "https://elsewhere.example/token"},
			`token_url: a connection takes its client from app "crm"`},
		{"an app that does not exist", "config/c3", map[string]any{"app": "nope"}, `no app named "nope": write app/nope first`},
		{"another app for a connection", "config/conn", map[string]any{"app": "other"}, `is a connection of app "crm", and a connection's app is fixed`},
		{"a self-contained config made a connection", "config/plain", map[string]any{"app": "crm"}, `config "plain" holds its own client; delete it`},
		{"a seed on an app", "app/crm", map[string]any{"refresh_token": "seed"}, "an app does not take refresh_token"},
		{"an app name too long", "app/" + strings.Repeat("a", maxAppName+1), map[string]any{"client_id": "x"}, "at most 64 characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.storageDump()
			_, err := e.do(logical.UpdateOperation, c.path, c.data)
			expectErr(t, c.path, err, c.want)
			if after := e.storageDump(); after != before {
				t.Errorf("a refused write changed storage:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestAppWriteReachesEveryConnection: rotating the app's client secret is
// one write for all its connections, with no failed read while it happens;
// changing its scopes drops the cached tokens (the chains are kept) so the
// next reads carry the new scopes.
func TestAppWriteReachesEveryConnection(t *testing.T) {
	e := newEnv(t)
	// refresh_grant=never: each new token is minted, with the app's scopes
	// of the moment (a refresh keeps the scopes of its grant, RFC 6749 §6).
	e.app("crm", fakeprovider.OAuth2, map[string]any{"scopes": "read", "refresh_grant": "never"})
	const n = 50
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("crm-%02d", i)
		e.mustDo(logical.CreateOperation, "config/"+names[i], map[string]any{"app": "crm"})
		// Minted before the provider switches secrets: a connection's first
		// mint between the switch and the app's write would rightly fail.
		e.token(names[i])
	}

	var reads, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.creds(names[i%n], nil); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				reads.Add(1)
			}
		}()
	}
	for reads.Load() < 2*n {
		time.Sleep(time.Millisecond)
	}
	// The provider takes the new secret only; the app gets it in one write.
	e.fake.AddClient(testClientID, "rotated-secret")
	e.mustDo(logical.UpdateOperation, "app/crm", map[string]any{"client_secret": "rotated-secret"})
	e.clock.Add(2 * time.Hour) // every cached token expires: each connection mints with the new secret
	for start := reads.Load(); reads.Load() < start+3*n; {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d reads failed during the rotation; first: %v", failed.Load(), reads.Load(), firstErr.Load())
	}
	for _, name := range names {
		if stored, _ := configEntries.load(t.Context(), e.storage, name); stored == nil || stored.ClientSecret != "" {
			t.Fatalf("connection %s stored %+v, want its app's name alone", name, stored)
		}
	}

	before := e.token(names[0])
	e.mustDo(logical.UpdateOperation, "app/crm", map[string]any{"scopes": "read,write"})
	resp := e.mustDo(logical.ReadOperation, "creds/"+names[0], nil)
	if resp.Data["access_token"] == before {
		t.Errorf("after the app's scopes changed, the connection still serves the token minted for the old scopes")
	}
	expect(t, "scopes after the change", fmt.Sprint(resp.Data["scopes"]), "[read write]")
}

// TestAppClientChangeRefusedWithConnections: a write that changes the
// client itself would leave the connections' chains with another client's
// tokens: refused while connections exist, allowed once they are gone.
func TestAppClientChangeRefusedWithConnections(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, nil)
	e.mustDo(logical.CreateOperation, "config/c1", map[string]any{"app": "crm"})
	e.token("c1")
	_, err := e.do(logical.UpdateOperation, "app/crm", map[string]any{"client_id": "someone-else"})
	expectErr(t, "client_id change", err, `this write changes the client of app "crm"`)
	expectErr(t, "client_id change", err, "its 1 connections")
	expectField(t, e.mustDo(logical.ReadOperation, "app/crm", nil).Data, "client_id", testClientID)
	e.mustDo(logical.DeleteOperation, "config/c1", nil)
	e.mustDo(logical.UpdateOperation, "app/crm", map[string]any{"client_id": "someone-else"})
	expectField(t, e.mustDo(logical.ReadOperation, "app/crm", nil).Data, "client_id", "someone-else")
}

// TestAppDelete: an app with connections is deleted only with them.
func TestAppDelete(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, nil)
	for _, name := range []string{"c1", "c2"} {
		e.mustDo(logical.CreateOperation, "config/"+name, map[string]any{"app": "crm"})
		e.token(name)
	}
	_, err := e.do(logical.DeleteOperation, "app/crm", nil)
	expectErr(t, "delete with connections", err, `app "crm" has 2 connections`)
	e.token("c1") // still serving
	e.mustDo(logical.DeleteOperation, "app/crm", map[string]any{"delete_connections": true})
	for _, name := range []string{"c1", "c2"} {
		if _, err := e.creds(name, nil); err == nil || !strings.Contains(err.Error(), "no config named") {
			t.Errorf("creds/%s after its app was deleted with its connections: err = %v, want no config", name, err)
		}
	}
	expect(t, "connections left", len(e.connections("crm", nil).Data), 0)
	if keys, err := e.storage.List(t.Context(), ""); err == nil {
		for _, k := range keys {
			if k != "settings" && k != "token/" {
				if sub, _ := e.storage.List(t.Context(), k); len(sub) > 0 {
					t.Errorf("storage still holds %s%v after the app and its connections were deleted", k, sub)
				}
			}
		}
	}
}

// TestConnectionOfAGoneApp: a connection whose app vanished under it (a
// replicated delete, a restore) says so clearly, and can be deleted.
func TestConnectionOfAGoneApp(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, nil)
	e.mustDo(logical.CreateOperation, "config/c1", map[string]any{"app": "crm"})
	if err := appEntries.delete(t.Context(), e.storage, "crm"); err != nil {
		t.Fatal(err)
	}
	e.b.invalidate(t.Context(), appPrefix+"crm")
	_, err := e.creds("c1", nil)
	expectErr(t, "creds of a connection without its app", err, `connection "c1" uses app "crm", which no longer exists`)
	e.mustDo(logical.DeleteOperation, "config/c1", nil)
	expect(t, "connections left", len(e.connections("crm", nil).Data), 0)
}

// TestAppConnectionsList pages through an app's connections and says who
// connected each.
func TestAppConnectionsList(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, nil)
	e.app("other", fakeprovider.OAuth2, nil)
	for i := range 5 {
		e.mustDo(logical.CreateOperation, fmt.Sprintf("config/c%d", i), map[string]any{"app": "crm"})
	}
	e.mustDo(logical.CreateOperation, "config/elsewhere", map[string]any{"app": "other"})
	cases := []struct {
		name string
		data map[string]any
		want string
	}{
		{"all", nil, "[c0 c1 c2 c3 c4]"},
		{"first page", map[string]any{"limit": 2}, "[c0 c1]"},
		{"next page", map[string]any{"after": "c1", "limit": 2}, "[c2 c3]"},
		{"last page", map[string]any{"after": "c3", "limit": 2}, "[c4]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.connections("crm", c.data)
			expect(t, "keys", fmt.Sprint(resp.Data["keys"]), c.want)
			info, _ := resp.Data["key_info"].(map[string]any)
			for _, k := range resp.Data["keys"].([]string) {
				if _, ok := info[k].(map[string]any)["owner"]; !ok {
					t.Errorf("key_info[%s] = %v, want its owner", k, info[k])
				}
			}
		})
	}
	_, err := e.do(logical.ListOperation, "app/crm/connections", map[string]any{"limit": 0})
	expectErr(t, "limit 0", err, "limit must be between 1 and")
}

// TestConnectionSeedAndSecretPromotion: a connection seeded by hand
// refreshes with its app's client; when the provider refuses the app's first
// secret and a later one works, the later one is promoted in the app (for
// every connection), never copied into the connection's entry.
func TestConnectionSeedAndSecretPromotion(t *testing.T) {
	e := newEnv(t)
	e.app("files", fakeprovider.OAuth2, map[string]any{"client_secrets": "next-secret"})
	seed := e.fake.SeedRefreshToken(fakeprovider.OAuth2, testClientID)
	e.mustDo(logical.CreateOperation, "config/f1", map[string]any{"app": "files", "refresh_token": seed})
	expectField(t, e.mustDo(logical.ReadOperation, "config/f1", nil).Data, "refresh_token_set", true)
	e.token("f1")
	e.fake.AddClient(testClientID, "next-secret") // the provider now takes the later secret only
	e.clock.Add(2 * time.Hour)
	e.token("f1")
	app, err := appEntries.load(t.Context(), e.storage, "files")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "the app's first secret after the promotion", app.ClientSecret, "next-secret")
	stored, err := configEntries.load(t.Context(), e.storage, "f1")
	if err != nil {
		t.Fatal(err)
	}
	if stored.ClientSecret != "" || len(stored.ClientSecrets) != 0 || stored.App != "files" {
		t.Errorf("connection entry after the promotion = %+v, want its app's name alone", *stored)
	}
	expect(t, "refresh-token reuses at the provider", e.fake.RefreshReuses(), 0)
}

// TestAppSigningKeys: an app's signing key signs for every connection
// (private_key_jwt), is published at jwks/app/<app> without a Vault token,
// and rotates at app/<app>/key; a connection whose renewal finds the
// provider taking only the next key promotes it in the app, not in itself.
func TestAppSigningKeys(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.CreateOperation, "app/signed", map[string]any{"provider": "oauth2", "token_url": e.fake.URL() + fakeprovider.PathOAuth2Token,
		"ca_pem": e.fake.CAPEM(), "client_id": "key-client", "auth_style": "private_key_jwt", "generate_key": "ec-p256"})
	key := e.mustDo(logical.ReadOperation, "app/signed/key", nil).Data
	e.fake.AddAssertionKey("key-client", "", publicKey(t, key, ""))
	for _, name := range []string{"s1", "s2"} {
		e.mustDo(logical.CreateOperation, "config/"+name, map[string]any{"app": "signed"})
		e.token(name)
	}
	for _, c := range []struct {
		op   logical.Operation
		path string
		data map[string]any
	}{{logical.ReadOperation, "key/s1", nil}, {logical.UpdateOperation, "key/s1/rotate", map[string]any{"generate_key": "ec-p256"}},
		{logical.UpdateOperation, "key/s1/promote", nil}} {
		_, err := e.do(c.op, c.path, c.data)
		expectErr(t, c.path, err, `"s1" is a connection of app "signed", whose keys sign for it: see app/signed/key`)
	}

	jwks := func() string {
		t.Helper()
		resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "jwks/app/signed",
			Storage: e.storage, Unauthenticated: true})
		if err != nil || resp == nil {
			t.Fatalf("jwks/app/signed: %v %v", resp, err)
		}
		expect(t, "jwks/app/signed status", resp.Data[logical.HTTPStatusCode], any(200))
		return string(resp.Data[logical.HTTPRawBody].([]byte))
	}
	if body := jwks(); !strings.Contains(body, key["key_id"].(string)) {
		t.Fatalf("jwks/app/signed = %s, want the current key %s", body, key["key_id"])
	}

	next := e.mustDo(logical.UpdateOperation, "app/signed/key/rotate", map[string]any{"generate_key": "ec-p256"}).Data
	if body := jwks(); !strings.Contains(body, next["next_key_id"].(string)) {
		t.Fatalf("jwks/app/signed after rotate = %s, want the next key %s", body, next["next_key_id"])
	}
	// The provider drops the current key and holds the next: a connection's
	// renewal finds it and promotes it for the whole app.
	e.fake.RemoveAssertionKeys("key-client")
	e.fake.AddAssertionKey("key-client", "", publicKey(t, next, "next_"))
	e.clock.Add(2 * time.Hour)
	e.token("s1")
	after := e.mustDo(logical.ReadOperation, "app/signed/key", nil).Data
	expect(t, "the app's current key after the promotion", after["key_id"], next["next_key_id"])
	e.token("s2") // the other connection signs with the promoted key at once
	if ring, _ := loadKeyRing(t.Context(), e.storage, "s1"); ring != nil {
		t.Error("the connection stored keys of its own")
	}
	e.restart()
	if body := jwks(); !strings.Contains(body, next["next_key_id"].(string)) {
		t.Fatalf("jwks/app/signed after a restart = %s, want the promoted key", body)
	}
	e.mustDo(logical.DeleteOperation, "app/signed", map[string]any{"delete_connections": true})
	_, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "jwks/app/signed", Storage: e.storage, Unauthenticated: true})
	if codeOf(err) != http.StatusNotFound {
		t.Errorf("jwks/app/signed after the app was deleted: %v, want a 404", err)
	}
}

// TestConnectionIndexFollowsOtherNodes: LIST app/<app>/connections pages
// from an index in memory; a connection another node made (an invalidation
// of its index entry) is listed at the next page, and an app that does not
// exist lists nothing and keeps no index.
func TestConnectionIndexFollowsOtherNodes(t *testing.T) {
	e := newEnv(t)
	e.app("crm", fakeprovider.OAuth2, nil)
	e.mustDo(logical.CreateOperation, "config/c1", map[string]any{"app": "crm"})
	expect(t, "keys", fmt.Sprint(e.connections("crm", nil).Data["keys"]), "[c1]")
	// Another node's connection: its entries, then Vault's invalidation here.
	if err := connectionRefs.save(t.Context(), e.storage, "crm/c0", &connectionRef{}); err != nil {
		t.Fatal(err)
	}
	if err := configEntries.save(t.Context(), e.storage, "c0", connectionEntry("crm", "")); err != nil {
		t.Fatal(err)
	}
	expect(t, "keys before the invalidation", fmt.Sprint(e.connections("crm", nil).Data["keys"]), "[c1]")
	e.b.invalidate(t.Context(), connectionIndexPrefix+"crm/c0")
	expect(t, "keys after the invalidation", fmt.Sprint(e.connections("crm", nil).Data["keys"]), "[c0 c1]")

	expect(t, "keys of an app that does not exist", len(e.connections("nope", nil).Data), 0)
	if _, kept := e.b.connectionIndexes.Load("nope"); kept {
		t.Error("LIST of an unknown app's connections kept an index")
	}
}
