package tokenbroker

// config/<name>: writing, reading, validating and deleting provider configs.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestConfigReadHidesSecrets(t *testing.T) {
	e := newEnv(t)
	seed := e.fake.SeedRefreshToken(fakeprovider.OAuth2, testClientID)
	e.config("x", fakeprovider.OAuth2, map[string]any{"refresh_token": seed, "scopes": "a, b", "extra_params": map[string]any{"resource": "r"}})
	data := e.mustDo(logical.ReadOperation, "config/x", nil).Data
	raw, _ := json.Marshal(data)
	for _, secret := range []string{testClientSecret, seed} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("config read shows the secret %q: %s", secret, raw)
		}
	}
	for key, want := range map[string]any{
		"client_secret_set":    true,
		"client_secrets_count": 1,
		"api_key_set":          false,
		"refresh_token_set":    true,
		"needs_refresh_token":  false,
		"client_id":            testClientID,
		"auth_style":           "basic", // oauth2's default, though none was written
		"encoding":             "form",
		"refresh_ahead":        int64(300),
		"timeout":              int64(30),
		"default_ttl":          int64(3600),
		"schema_version":       configSchemaVersion,
	} {
		expectField(t, data, key, want)
	}
	expect(t, "scopes", fmt.Sprint(data["scopes"]), "[a b]")
	expect(t, "extra_params", fmt.Sprint(data["extra_params"]), "map[resource:r]")
}

func TestConfigList(t *testing.T) {
	e := newEnv(t)
	if keys := e.mustDo(logical.ListOperation, "config/", nil).Data["keys"]; keys != nil {
		t.Fatalf("keys before any write = %v, want none", keys)
	}
	e.config("x", fakeprovider.OAuth2, nil)
	e.config("y.z", fakeprovider.APIVideo, nil)
	expect(t, "keys", fmt.Sprint(e.mustDo(logical.ListOperation, "config/", nil).Data["keys"]), "[x y.z]")
}

func TestConfigReadOfUnknownNameIsEmpty(t *testing.T) {
	e := newEnv(t)
	if resp := e.mustDo(logical.ReadOperation, "config/missing", nil); resp != nil {
		t.Fatalf("config/missing = %v, want no response (404)", resp.Data)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.config("good", fakeprovider.OAuth2, nil)
	tok := e.token("good")
	before := e.storageDump()
	valid := map[string]any{"provider": "oauth2", "token_url": e.fake.URL() + "/oauth2/token", "client_id": "id", "client_secret": "s"}
	good := func(change map[string]any) map[string]any { return withFields(valid, change) }
	for _, tc := range []struct {
		name, path string
		data       map[string]any
		want       string
	}{
		{"unknown provider", "config/new", good(map[string]any{"provider": "nope"}), "unknown provider"},
		{"no token url", "config/new", good(map[string]any{"token_url": nil}), "token_url is required"},
		{"remote http", "config/new", good(map[string]any{"token_url": "http://idp.example/token"}), "https"},
		{"missing secret", "config/new", good(map[string]any{"client_secret": nil}), "client_secret"},
		{"apivideo without key", "config/new", good(map[string]any{"provider": "apivideo"}), "api_key"},
		{"bad name", "config/bad!name", good(nil), "invalid name"},
		{"name with slash", "config/a/b", good(nil), "invalid name"},
		{"name dotdot", "config/..", good(nil), "invalid name"},
		{"absurd ttl", "config/new", good(map[string]any{"default_ttl": "1000000h"}), "default_ttl"},
		{"tiny timeout", "config/new", good(map[string]any{"timeout": "0s"}), "timeout"},
		{"negative refresh_ahead", "config/new", good(map[string]any{"refresh_ahead": "-5m"}), "refresh_ahead"},
		{"duration garbage", "config/new", good(map[string]any{"refresh_ahead": "soon"}), "refresh_ahead"},
		{"bad auth style", "config/new", good(map[string]any{"auth_style": "header"}), "auth_style"},
		{"bad encoding", "config/new", good(map[string]any{"encoding": "xml"}), "encoding"},
		{"bad ca", "config/new", good(map[string]any{"ca_pem": "not a pem"}), "ca_pem"},
		{"reserved extra param", "config/new", good(map[string]any{"extra_params": map[string]any{"client_secret": "x"}}), "extra_params"},
		{"update to remote http", "config/good", map[string]any{"token_url": "http://idp.example/"}, "https"},
		{"update to a dialect without its secret", "config/good", map[string]any{"provider": "apivideo", "token_url": e.fake.URL() + fakeprovider.APIVideo.TokenPath()}, "api_key"},
		{"creds of a bad name", "creds/bad!name", nil, "invalid name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var op logical.Operation = logical.UpdateOperation
			if strings.HasPrefix(tc.path, "creds/") {
				op = logical.ReadOperation
			}
			resp, err := e.do(op, tc.path, tc.data)
			expectErr(t, fmt.Sprintf("%s %s", op, tc.path), err, tc.want)
			if resp == nil || !resp.IsError() {
				t.Errorf("response = %v, want a 400 error response", resp)
			}
			if after := e.storageDump(); after != before {
				t.Errorf("storage changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	expect(t, "token of the good config after bad input", e.token("good"), tok)
	expect(t, "upstream calls", e.fake.TotalCalls(), 1)
}

func TestConfigChanges(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, nil)
	first := e.token("x")

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"timeout": "10s"})
	expect(t, "token after a timing-only change", e.token("x"), first)

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"scopes": "narrow"})
	second := e.token("x")
	if second == first {
		t.Fatalf("token after a scope change = %q, the old one; want it evicted", second)
	}
	expect(t, "refresh grants after a scope change (chain kept)", e.fake.Grants("refresh_token"), 1)

	e.fake.AddClient(testClientID, "rotated-secret")
	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"client_secret": "rotated-secret"})
	expect(t, "token after a new client secret (the same client)", e.token("x"), second)
	e.clock.Add(2 * time.Hour)
	if third := e.token("x"); third == second || !e.fake.Valid(third) {
		t.Fatalf("token after expiry = %q (valid %v), want a new valid one", third, e.fake.Valid(third))
	}
	expect(t, "refresh grants after a new client secret (chain kept, sent with it)", e.fake.Grants("refresh_token"), 2)
	expect(t, "client_credentials grants", e.fake.Grants("client_credentials"), 1)

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"client_id": "other-client"})
	e.fake.AddClient("other-client", "rotated-secret")
	e.token("x")
	expect(t, "client_credentials grants after a new client id (new chain)", e.fake.Grants("client_credentials"), 2)
}

func TestConfigDeleteRemovesEverything(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, nil)
	e.token("x")
	e.mustDo(logical.DeleteOperation, "config/x", nil)
	if dump := e.storageDump(); dump != "" {
		t.Fatalf("storage after config delete:\n%s\nwant nothing", dump)
	}
	_, err := e.creds("x", nil)
	expectErr(t, "creds of a deleted config", err, `no config named "x"`)
}

func TestExistenceCheckCreateVsUpdate(t *testing.T) {
	e := newEnv(t)
	check := func() (bool, bool, error) {
		return e.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: "config/x", Storage: e.storage})
	}
	checked, exists, err := check()
	if err != nil || !checked || exists {
		t.Fatalf("before the write: checked %v, exists %v, err %v; want true, false, nil", checked, exists, err)
	}
	e.config("x", fakeprovider.OAuth2, nil)
	checked, exists, err = check()
	if err != nil || !checked || !exists {
		t.Fatalf("after the write: checked %v, exists %v, err %v; want true, true, nil", checked, exists, err)
	}
}

// FuzzConfigWrite writes arbitrary configs: a rejected one is not stored, an
// accepted one reads back, and the read does not depend on the client
// secret (written again with another secret, it reads the same).
func FuzzConfigWrite(f *testing.F) {
	f.Add("x", "oauth2", "https://idp.example/token", "id", "secret", "a,b", "5m", "form")
	f.Add("a.b-c_d", "apivideo", "http://[::1]:1/auth/api-key", "", "", "", "1h", "json")
	f.Add("..", "endorsed", "ftp://x", "id", "", "", "-1", "xml")
	f.Add("x", "oauth2", "https://idp.example/token", "basic", "basic", "", "5m", "")
	f.Fuzz(func(t *testing.T, name, dialect, tokenURL, clientID, secret, scopes, ahead, encoding string) {
		data := map[string]any{"provider": dialect, "token_url": tokenURL, "client_id": clientID, "client_secret": secret,
			"scopes": scopes, "refresh_ahead": ahead, "encoding": encoding}
		read, accepted := fuzzWriteAndRead(t, name, data)
		s := strings.TrimSpace(secret) // the stored secret is trimmed
		if !accepted || s == "" {
			return
		}
		other := "another-client-secret"
		if s == other {
			other += "-2"
		}
		readOther, acceptedOther := fuzzWriteAndRead(t, name, withFields(data, map[string]any{"client_secret": other}))
		if !acceptedOther {
			t.Fatalf("config accepted with client_secret %q but refused with %q", s, other)
		}
		// The exact secret as a JSON string, unless a field that is not
		// secret shows the same text with the other secret too.
		quoted, _ := json.Marshal(s)
		if len(s) > 3 && strings.Contains(read, string(quoted)) && !strings.Contains(readOther, string(quoted)) {
			t.Fatalf("config read shows the secret %s: %s", quoted, read)
		}
		if read != readOther {
			t.Fatalf("config read depends on the client secret:\nwith %q: %s\nwith %q: %s", s, read, other, readOther)
		}
	})
}

// fuzzWriteAndRead writes config/<name> with data on a fresh backend and
// returns the config read as JSON, and whether the write was accepted. A
// rejected config must leave storage empty.
func fuzzWriteAndRead(t *testing.T, name string, data map[string]any) (read string, accepted bool) {
	t.Helper()
	ctx := context.Background()
	conf := logical.TestBackendConfig()
	storage := &logical.InmemStorage{}
	conf.StorageView = storage
	b := newBackend(conf)
	if err := b.Setup(ctx, conf); err != nil {
		t.Fatalf("backend setup: %v", err)
	}
	defer b.Cleanup(ctx)
	resp, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "config/" + name, Storage: storage, Data: data})
	if err != nil || (resp != nil && resp.IsError()) {
		if stored, _ := storage.List(ctx, configPrefix); len(stored) != 0 {
			t.Fatalf("rejected config (err %v, response %v) stored as %v", err, resp, stored)
		}
		return "", false
	}
	got, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "config/" + name, Storage: storage})
	if err != nil || got == nil {
		t.Fatalf("accepted config not readable: response %v, err %v", got, err)
	}
	raw, err := json.Marshal(got.Data)
	if err != nil {
		t.Fatalf("encode config read %v: %v", got.Data, err)
	}
	return string(raw), true
}
