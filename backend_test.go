package tokenbroker

// The backend as Vault sees it: built by Factory, its paths, and how it
// reacts to storage changed by another node.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestFactoryBackendServesEveryPath builds the backend as the plugin's main
// does and drives every path through HandleRequest.
func TestFactoryBackendServesEveryPath(t *testing.T) {
	e := newEnv(t)
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	built, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	b, ok := built.(*backend)
	if !ok {
		t.Fatalf("Factory returned %T, want *backend", built)
	}
	e.b.Cleanup(context.Background())
	b.now = e.clock.Now
	e.b = b

	expect(t, "backend type", b.Type(), logical.TypeLogical)
	expect(t, "running version", b.RunningVersion, Version)
	for _, prefix := range []string{configPrefix, tokenPrefix} {
		if !slices.Contains(b.SpecialPaths().SealWrapStorage, prefix) {
			t.Fatalf("seal-wrapped storage = %v, want it to include %q (secrets live there)", b.SpecialPaths().SealWrapStorage, prefix)
		}
	}

	e.config("x", fakeprovider.Echo360, nil)
	expect(t, "config list", fmt.Sprint(e.mustDo(logical.ListOperation, "config/", nil).Data["keys"]), "[x]")
	expectField(t, e.mustDo(logical.ReadOperation, "config/x", nil).Data, "provider", "echo360")
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatalf("creds/x token %q: not accepted by the fake", tok)
	}
	expectField(t, e.status("x"), "mints", 1)
	expect(t, "status list", fmt.Sprint(e.mustDo(logical.ListOperation, "status/", nil).Data["keys"]), "[x]")
	e.mustDo(logical.DeleteOperation, "creds/x", nil)
	e.mustDo(logical.DeleteOperation, "config/x", nil)
	_, err = e.creds("x", nil)
	expectErr(t, "creds after delete", err, `no config named "x"`)
	_, err = e.do(logical.ReadOperation, "nothing/here", nil)
	expectErr(t, "read of an unknown path", err, "unsupported path")
}

func TestInvalidateTokenStateReloadsFromStorage(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, nil)
	first := e.token("x")
	// Another node rotated: storage holds a different state.
	st := e.storedState("x")
	st.AccessToken = "from-elsewhere"
	e.storeState("x", st)
	expect(t, "cached token (reads do not touch storage)", e.token("x"), first)

	e.b.InvalidateKey(context.Background(), tokenPrefix+"x")
	expect(t, "token after invalidation", e.token("x"), "from-elsewhere")
}

func TestInvalidateConfigReloadsFromStorage(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, nil)
	expectField(t, e.mustDo(logical.ReadOperation, "creds/x", nil).Data, "ttl", int64(3300)) // window 5 min

	// Another node widened the refresh window to 10 min.
	cfg, err := loadConfig(context.Background(), e.storage, "x")
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	cfg.RefreshAhead = 10 * time.Minute
	if err := configEntries.save(context.Background(), e.storage, "x", cfg); err != nil {
		t.Fatalf("write config: %v", err)
	}
	expectField(t, e.mustDo(logical.ReadOperation, "creds/x", nil).Data, "ttl", int64(3300))

	e.b.InvalidateKey(context.Background(), "other/x") // not ours: ignored
	expectField(t, e.mustDo(logical.ReadOperation, "creds/x", nil).Data, "ttl", int64(3300))

	e.b.InvalidateKey(context.Background(), configPrefix+"x")
	expectField(t, e.mustDo(logical.ReadOperation, "creds/x", nil).Data, "ttl", int64(3000))
	expect(t, "upstream calls", e.fake.TotalCalls(), 1)
}

// A state not saved yet is newer than anything stored, so an invalidation
// must not replace it with the stale stored one.
func TestInvalidateKeepsUnsavedState(t *testing.T) {
	e := newEnv(t)
	rotateUnsaved(e)
	unsaved := e.token("x")
	e.settle("x") // the read started a flush, which fails again

	e.b.InvalidateKey(context.Background(), tokenPrefix+"x")
	expect(t, "token after invalidation", e.token("x"), unsaved)
	if stored := e.storedState("x"); stored.AccessToken == unsaved {
		t.Fatalf("stored access token = %q, want the stale one (the write was refused)", stored.AccessToken)
	}
}

// Configs that trust the same CA share one pooled HTTP client.
func TestHTTPClientSharedPerCA(t *testing.T) {
	e := newEnv(t)
	other := fakeprovider.New(fakeprovider.Options{TLS: true, Now: e.clock.Now})
	for _, name := range []string{"a", "b"} {
		e.config(name, fakeprovider.OAuth2, nil)
	}
	e.config("c", fakeprovider.OAuth2, map[string]any{"ca_pem": other.CAPEM()})
	client := func(name string) *http.Client {
		r, err := e.b.configured(context.Background(), e.storage, name)
		if err != nil {
			t.Fatalf("renewal of %q: %v", name, err)
		}
		return r.client
	}
	if a, b := client("a"), client("b"); a != b {
		t.Fatalf("configs a and b trust the same CA: clients %p and %p, want one shared", a, b)
	}
	if a, c := client("a"), client("c"); a == c {
		t.Fatalf("configs a and c trust different CAs: clients %p and %p, want one each", a, c)
	}
}
