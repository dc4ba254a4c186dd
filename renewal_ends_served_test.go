package tokenbroker

// Specs of revokes_previous_token: a chain whose renewal ends the token it
// serves is served only until that renewal, and readers from then on wait for
// it. The fake's clock drives time; the fake itself keeps every token alive,
// so these specs check what the plugin says and when it calls. The same rules
// against providers that do revoke: previous_token_test.go (the fake's
// switch) and previous_token_fosite_test.go (ory/fosite).

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestRevokesPreviousTokenSetting(t *testing.T) {
	cases := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"oauth2 keeps tokens by default", map[string]any{"provider": "oauth2"}, "never"},
		{"echo360 keeps tokens by default", map[string]any{"provider": "echo360"}, "never"},
		{"github user tokens end on refresh", map[string]any{"provider": "github", "token_url": nil, "ca_pem": nil}, "on_refresh"},
		{"ory ends on refresh", map[string]any{"provider": "ory", "tenant": "acme.projects.oryapis.com", "token_url": nil, "ca_pem": nil}, "on_refresh"},
		{"explicit on_new_token", map[string]any{"provider": "oauth2", "revokes_previous_token": "on_new_token"}, "on_new_token"},
		{"explicit never over a preset's", map[string]any{"provider": "github", "token_url": nil, "ca_pem": nil, "revokes_previous_token": "never"}, "never"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.config("x", fakeprovider.OAuth2, c.fields)
			expectField(t, e.mustDo(logical.ReadOperation, "config/x", nil).Data, "revokes_previous_token", c.want)
			expectField(t, e.status("x"), "revokes_previous_token", c.want)
		})
	}

	t.Run("an unknown value is refused and changes nothing", func(t *testing.T) {
		e := newEnv(t)
		e.config("x", fakeprovider.OAuth2, nil)
		before := e.storageDump()
		_, err := e.do(logical.UpdateOperation, "config/x", map[string]any{"revokes_previous_token": "sometimes"})
		expectErr(t, "revokes_previous_token=sometimes", err, `unknown revokes_previous_token "sometimes"`)
		expect(t, "storage after the refused write", e.storageDump(), before)
	})
}

// readAt reads creds/x and returns the response data.
func readAt(e *env, name string) map[string]any {
	e.t.Helper()
	return e.mustDo(logical.ReadOperation, "creds/"+name, nil).Data
}

func TestRenewalThatEndsTheServedToken(t *testing.T) {
	const lifetime, window = time.Hour, 5 * time.Minute
	renewalAt := testStart.Add(lifetime - window)
	cases := []struct {
		name     string
		dialect  fakeprovider.Dialect
		previous string
	}{
		{"client credentials, one active token per client", fakeprovider.OAuth2, "on_new_token"},
		{"refresh chain, a refresh ends the previous token", fakeprovider.Echo360, "on_refresh"},
		{"refresh chain, any new token ends the previous one", fakeprovider.Echo360, "on_new_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetLifetime(lifetime)
			e.config("x", c.dialect, map[string]any{"refresh_ahead": int(window.Seconds()), "revokes_previous_token": c.previous})
			first := readAt(e, "x")
			expectField(t, first, "expires_at_seconds", renewalAt.Unix())
			expectField(t, first, "expires_at", renewalAt.Format(time.RFC3339))
			expectField(t, first, "ttl", int64((lifetime-window)/time.Second)-1)
			status := e.status("x")
			expectField(t, status, "served_until", renewalAt.Format(time.RFC3339))
			expectField(t, status, "next_renewal_at", renewalAt.Format(time.RFC3339))
			calls := e.fake.TotalCalls()

			t.Run("two seconds before the renewal: the cached token, ttl 1", func(t *testing.T) {
				e.clock.Add(lifetime - window - 2*time.Second)
				got := readAt(e, "x")
				expectField(t, got, "access_token", first["access_token"])
				expectField(t, got, "ttl", int64(1))
				expect(t, "upstream calls", e.fake.TotalCalls(), calls)
			})
			t.Run("inside the handover: the renewed token", func(t *testing.T) {
				e.clock.Add(1500 * time.Millisecond) // half a second before the renewal
				start := time.Now()
				got := readAt(e, "x")
				if got["access_token"] == first["access_token"] {
					t.Fatalf("read half a second before the renewal got the token it ends")
				}
				if waited := time.Since(start); waited < 400*time.Millisecond {
					t.Fatalf("the read returned after %s, want it to wait for the renewal (~500ms)", waited)
				}
				expect(t, "upstream calls", e.fake.TotalCalls(), calls+1)
			})
			t.Run("inside the window, readers wait for one renewal", func(t *testing.T) {
				served := readAt(e, "x")["access_token"]
				e.clock.Add(lifetime - window + time.Minute)
				before := e.fake.TotalCalls()
				var wg sync.WaitGroup
				tokens := make([]any, 16)
				for i := range tokens {
					wg.Add(1)
					go func() { defer wg.Done(); tokens[i] = readAt(e, "x")["access_token"] }()
				}
				wg.Wait()
				for i, tok := range tokens {
					if tok == served {
						t.Fatalf("reader %d inside the window got the token the renewal ends", i)
					}
					if tok != tokens[0] {
						t.Fatalf("reader %d got %v, reader 0 %v: want one renewal shared", i, tok, tokens[0])
					}
				}
				expect(t, "upstream calls for 16 readers", e.fake.TotalCalls()-before, 1)
			})
		})
	}
}

// The same reads of a provider that keeps every token: the cached token in
// the window, refreshed off the read path, and Agent's ttl floor.
func TestRenewalThatKeepsTheServedToken(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.Echo360, nil)
	first := readAt(e, "x")
	expectField(t, first, "expires_at_seconds", testStart.Add(time.Hour).Unix())
	e.clock.Add(55*time.Minute - 500*time.Millisecond)
	expectField(t, readAt(e, "x"), "ttl", int64(minAgentTTL))
	e.clock.Add(time.Minute)
	expectField(t, readAt(e, "x"), "access_token", first["access_token"])
	e.settle("x")
	expect(t, "refresh grants", e.fake.Grants("refresh_token"), 1)
}

func TestRenewalThatEndsTheServedTokenFails(t *testing.T) {
	t.Run("a temporary failure serves the token until the retry", func(t *testing.T) {
		e := newEnv(t)
		e.fake.SetLifetime(time.Hour)
		e.config("x", fakeprovider.OAuth2, map[string]any{"revokes_previous_token": "on_new_token"})
		first := readAt(e, "x")
		e.clock.Add(56 * time.Minute)
		e.fake.Fail(1, fakeprovider.Fail500)
		resp, err := e.creds("x", nil)
		if err != nil {
			t.Fatalf("read after a failed renewal: %v, want the cached token (nothing ended it)", err)
		}
		expectField(t, resp.Data, "access_token", first["access_token"])
		if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "could not be obtained") {
			t.Fatalf("warnings = %v, want the failure", resp.Warnings)
		}
		until := time.Unix(resp.Data["expires_at_seconds"].(int64), 0)
		now := e.clock.Now()
		if !until.After(now) || until.After(testStart.Add(time.Hour)) {
			t.Fatalf("expires_at after the failure = %s, want after now (%s) and by the token's expiry", until, now)
		}
		expectField(t, e.status("x"), "served_until", until.UTC().Format(time.RFC3339))
		calls := e.fake.TotalCalls()
		expectField(t, readAt(e, "x"), "access_token", first["access_token"])
		expect(t, "upstream calls before the retry", e.fake.TotalCalls(), calls)
		e.clock.Add(until.Sub(now))
		if got := readAt(e, "x")["access_token"]; got == first["access_token"] {
			t.Fatalf("read at the retry got the old token")
		}
	})

	t.Run("a refused refresh does not serve the token it may have ended", func(t *testing.T) {
		for _, previous := range []string{"never", "on_refresh"} {
			t.Run(previous, func(t *testing.T) {
				e := newEnv(t)
				e.fake.SetLifetime(time.Hour)
				seed := e.fake.SeedRefreshToken(fakeprovider.Echo360, testClientID)
				e.config("x", fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_token": seed, "revokes_previous_token": previous})
				first := readAt(e, "x")
				e.clock.Add(56 * time.Minute)
				e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
				resp, err := e.creds("x", nil)
				if previous == "never" {
					if err != nil || resp.Data["access_token"] != first["access_token"] {
						t.Fatalf("never: read after the refusal = %v, %v; want the still-valid token", resp, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("on_refresh: read after the refusal served %v, want an error (the chain is lost and its token may be ended)", resp.Data["access_token"])
				}
				expectErr(t, "on_refresh: read after the refusal", err, "write a new refresh_token")
				if st := e.storedState("x"); st.AccessToken != "" || !st.NeedsRefreshToken {
					t.Fatalf("stored state after the refusal: access token set %v, needs_refresh_token %v; want no token and needs_refresh_token",
						st.AccessToken != "", st.NeedsRefreshToken)
				}
			})
		}
	})
}

func TestMinTTLDoesNotRenewATokenOthersHold(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, map[string]any{"revokes_previous_token": "on_new_token"})
	first := readAt(e, "x")
	e.clock.Add(20 * time.Minute)
	calls := e.fake.TotalCalls()
	resp, err := e.creds("x", map[string]any{"min_ttl": "50m"})
	if err != nil {
		t.Fatal(err)
	}
	expectField(t, resp.Data, "access_token", first["access_token"])
	expect(t, "upstream calls", e.fake.TotalCalls(), calls)
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "revokes_previous_token") {
		t.Fatalf("warnings = %v, want one saying min_ttl cannot be met without ending the token others hold", resp.Warnings)
	}
}

func TestBackgroundRenewsAtTheWindowStart(t *testing.T) {
	for _, c := range []struct {
		previous  string
		wantDelay bool
	}{{"never", true}, {"on_new_token", false}} {
		t.Run(c.previous, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetLifetime(time.Hour)
			// A name whose passDelay is not zero, so the difference shows.
			name := "x"
			for i := 0; passDelay(name, 5*time.Minute) == 0; i++ {
				name = "x" + string(rune('a'+i))
			}
			e.config(name, fakeprovider.OAuth2, map[string]any{"revokes_previous_token": c.previous})
			e.token(name)
			snap := e.b.loaded(name)
			due := snap.backgroundDue(name)
			windowStart := testStart.Add(55 * time.Minute)
			if got := due.After(windowStart); got != c.wantDelay {
				t.Fatalf("background due at %s, window starts %s: delayed = %v, want %v", due, windowStart, got, c.wantDelay)
			}
			if urgent := e.b.urgentAt(name, windowStart); c.previous != "never" && !urgent.Equal(windowStart) {
				t.Fatalf("urgentAt = %s, want now (%s): such a chain is never paced into its window", urgent, windowStart)
			}
		})
	}
}
