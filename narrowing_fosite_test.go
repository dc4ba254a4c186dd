package tokenbroker

// Narrowed reads at ory/fosite, a strict server nobody here wrote: it
// narrows a client credentials token to the scope asked, but on refresh it
// ignores the scope asked (it grants the refresh token's whole scope and
// says so) and revokes the access token of the refresh token it spends.

import (
	"net/http"
	"slices"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/internal/fositeop"
)

// TestFositeNarrowedReads: a narrowed client credentials token is issued
// for the scope asked and leaves the main token active. On a connected
// chain configured as fosite behaves (revokes_previous_token=on_refresh) a
// narrowed read is refused before anything is sent. Configured as if it
// did not (never), the narrowed refresh goes out and fosite answers with
// the whole scope: that token is not served, the rotated refresh token is
// kept, none is sent twice; and fosite ended the main token, which is what
// on_refresh protects against.
func TestFositeNarrowedReads(t *testing.T) {
	op, err := fositeop.Start(fositeop.Options{Clients: []fositeop.Client{
		{ID: "cc", Secret: "secret-of-cc"},
		{ID: "web", Secret: "secret-of-web", RedirectURI: testRedirect},
		{ID: "web-never", Secret: "secret-of-web-never", RedirectURI: testRedirect},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	e, _ := newRealClockEnv(t)
	config := func(name, client string, extra map[string]any) {
		t.Helper()
		e.mustDo(logical.CreateOperation, "config/"+name, withFields(map[string]any{"provider": "oauth2", "token_url": op.TokenURL,
			"client_id": client, "client_secret": "secret-of-" + client, "scopes": "read,write", "allowed_scopes": "read",
			"revokes_previous_token": "on_refresh"}, extra))
	}

	t.Run("client credentials", func(t *testing.T) {
		config("cc", "cc", nil)
		main := e.token("cc")
		resp, err := e.creds("cc", map[string]any{"scope": "read"})
		if err != nil {
			t.Fatalf("narrowed read: %v", err)
		}
		narrowed, _ := resp.Data["access_token"].(string)
		if got := op.Scopes(narrowed); !slices.Equal(got, []string{"read"}) {
			t.Errorf("scopes fosite granted the narrowed token: got %v, want [read]", got)
		}
		if !op.Active(main) || !slices.Equal(op.Scopes(main), []string{"read", "write"}) {
			t.Errorf("main token: active %v, scopes %v; want active with [read write]", op.Active(main), op.Scopes(main))
		}
	})

	connected := func(name, client, previous string) (main string) {
		t.Helper()
		config(name, client, map[string]any{"auth_url": op.AuthURL, "redirect_uri": testRedirect, "scopes": "offline,read,write",
			"revokes_previous_token": previous})
		connectThroughFosite(t, e, name)
		return e.token(name)
	}

	t.Run("a connected chain, configured as fosite behaves", func(t *testing.T) {
		main := connected("web", "web", "on_refresh")
		presented, _ := op.RefreshTokens("web")
		_, err := e.creds("web", map[string]any{"scope": "read"})
		expectErr(t, "a narrowed refresh at fosite", err, "revokes_previous_token")
		expect(t, "status", codeOf(err), http.StatusBadRequest)
		if now, _ := op.RefreshTokens("web"); now != presented || !op.Active(main) {
			t.Errorf("refresh tokens presented since %d, main token active %v; want none and active", now-presented, op.Active(main))
		}
	})

	t.Run("a connected chain, configured as if fosite kept tokens", func(t *testing.T) {
		main := connected("never", "web-never", "never")
		before := e.storedState("never").RefreshToken
		_, err := e.creds("never", map[string]any{"scope": "read"})
		expectErr(t, "a narrowed refresh fosite ignored", err, "scopes beyond those asked (write)")
		expect(t, "status", codeOf(err), http.StatusBadGateway)
		if after := e.storedState("never").RefreshToken; after == before || after == "" {
			t.Error("the refresh token fosite rotated is not the chain's")
		}
		if _, reused := op.RefreshTokens("web-never"); reused != 0 {
			t.Errorf("refresh tokens presented again: %d, want 0", reused)
		}
		if op.Active(main) {
			t.Error("fosite kept the main token active after the refresh; the on_refresh setting's reason is gone")
		}
	})
}
