package fakeprovider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

const otherAPIKey = "apikey-other-98765"

// authCode runs an authorization code grant for the test client and returns
// the token response.
func authCode(t *testing.T, c *http.Client, s *Server) response {
	t.Helper()
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	back, err := s.Authorize(authorizeURL(s, verifier))
	if err != nil {
		t.Fatalf("Authorize: got %v, want a redirect", err)
	}
	u, err := url.Parse(back)
	if err != nil {
		t.Fatalf("redirect %q: %v", back, err)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")},
		"redirect_uri": {"https://vault.example/cb"}, "code_verifier": {verifier}}
	r := postForm(t, c, s.URL()+PathOAuth2Token, form, withBasic(testClientID, testClientSecret))
	wantStatus(t, r, http.StatusOK)
	return r
}

// mintForeign mints a token of d for a client other than the test client.
func mintForeign(t *testing.T, c *http.Client, s *Server, d Dialect) response {
	t.Helper()
	switch d {
	case APIVideo:
		s.AddAPIKey(otherAPIKey)
		return postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": otherAPIKey})
	default:
		return postForm(t, c, s.URL()+d.TokenPath(), ccForm(otherClientID, otherSecret))
	}
}

// wantRevoked checks that token was revoked at at: refused by Valid and
// whoami, and recorded by RevokedAt.
func wantRevoked(t *testing.T, c *http.Client, s *Server, what, token string, at time.Time) {
	t.Helper()
	got, ok := s.RevokedAt(token)
	if !ok || !got.Equal(at) {
		t.Errorf("RevokedAt(%s): got %v, %v; want %v, true", what, got, ok, at)
	}
	if s.Valid(token) {
		t.Errorf("Valid(%s): got true, want false for a revoked token", what)
	}
	w := whoami(t, c, s, token)
	if w.status != http.StatusUnauthorized {
		t.Errorf("whoami(%s): got %d %s, want 401", what, w.status, w.body)
	}
}

// wantLive checks that token was not revoked and is still accepted.
func wantLive(t *testing.T, c *http.Client, s *Server, what, token string) {
	t.Helper()
	if got, ok := s.RevokedAt(token); ok {
		t.Errorf("RevokedAt(%s): got %v, true; want false (never revoked)", what, got)
	}
	if !s.Valid(token) {
		t.Errorf("Valid(%s): got false, want true", what)
	}
	if w := whoami(t, c, s, token); w.status != http.StatusOK {
		t.Errorf("whoami(%s): got %d %s, want 200", what, w.status, w.body)
	}
}

// TestPreviousTokenRevocation: which earlier tokens a new token ends, for
// each mode and each grant that issues it. Every case holds three earlier
// tokens of one dialect: "chain" (whose refresh token a refresh grant
// redeems), "sibling" (the same client, another grant), "foreign" (another
// client).
func TestPreviousTokenRevocation(t *testing.T) {
	type grantCase struct {
		name     string
		dialects []Dialect
		// chain issues the token whose refresh token grant may redeem.
		chain func(t *testing.T, c *http.Client, s *Server, d Dialect) response
		// grant issues the new token.
		grant func(t *testing.T, c *http.Client, s *Server, d Dialect, chain response) response
		// refresh: grant redeems chain's refresh token.
		refresh bool
	}
	byMint := func(t *testing.T, c *http.Client, s *Server, d Dialect) response { return mint(t, c, s, d) }
	byCode := func(t *testing.T, c *http.Client, s *Server, _ Dialect) response { return authCode(t, c, s) }
	grants := []grantCase{
		{
			name: "client credentials", dialects: refreshDialects, chain: byMint,
			grant: func(t *testing.T, c *http.Client, s *Server, d Dialect, _ response) response { return mint(t, c, s, d) },
		},
		{
			name: "refresh of a client-credentials chain", dialects: refreshDialects, chain: byMint, refresh: true,
			grant: func(t *testing.T, c *http.Client, s *Server, d Dialect, chain response) response {
				return refresh(t, c, s, d, chain.str(t, "refresh_token"))
			},
		},
		{
			name: "authorization code", dialects: []Dialect{OAuth2}, chain: byMint,
			grant: func(t *testing.T, c *http.Client, s *Server, _ Dialect, _ response) response {
				return authCode(t, c, s)
			},
		},
		{
			name: "refresh of an authorization-code chain", dialects: []Dialect{OAuth2}, chain: byCode, refresh: true,
			grant: func(t *testing.T, c *http.Client, s *Server, d Dialect, chain response) response {
				return refresh(t, c, s, d, chain.str(t, "refresh_token"))
			},
		},
	}
	type revokedSet struct{ chain, sibling, foreign bool }
	modes := []struct {
		mode PreviousTokenRevocation
		want func(g grantCase) revokedSet
	}{
		{PreviousTokensKept, func(grantCase) revokedSet { return revokedSet{} }},
		{RevokePreviousOnRefresh, func(g grantCase) revokedSet { return revokedSet{chain: g.refresh} }},
		{RevokePreviousOnNewToken, func(grantCase) revokedSet { return revokedSet{chain: true, sibling: true} }},
	}
	for _, m := range modes {
		for _, g := range grants {
			for _, d := range g.dialects {
				t.Run(fmt.Sprintf("%s/%s/%s", m.mode, g.name, d), func(t *testing.T) {
					clock := newClock()
					s, c := start(t, Options{Now: clock.Now, Lifetime: time.Hour})
					// The earlier tokens are issued before the switch: the
					// mode in force at the new token's issue decides.
					chain := g.chain(t, c, s, d)
					wantStatus(t, chain, http.StatusOK)
					sibling := mint(t, c, s, d)
					wantStatus(t, sibling, http.StatusOK)
					foreign := mintForeign(t, c, s, d)
					wantStatus(t, foreign, http.StatusOK)
					s.SetPreviousTokenRevocation(m.mode)

					clock.Advance(time.Second)
					at := clock.Now()
					next := g.grant(t, c, s, d, chain)
					wantStatus(t, next, http.StatusOK)
					wantLive(t, c, s, "the new token", next.str(t, "access_token"))

					want := m.want(g)
					revoked := 0
					for _, e := range []struct {
						what    string
						tok     response
						revoked bool
					}{
						{"chain", chain, want.chain},
						{"sibling", sibling, want.sibling},
						{"foreign", foreign, want.foreign},
					} {
						if e.revoked {
							revoked++
							wantRevoked(t, c, s, e.what, e.tok.str(t, "access_token"), at)
						} else {
							wantLive(t, c, s, e.what, e.tok.str(t, "access_token"))
						}
					}
					if got := s.RevokedTokens(); got != revoked {
						t.Errorf("RevokedTokens: got %d, want %d", got, revoked)
					}
				})
			}
		}
	}
}

func TestPreviousTokenRevocationDetails(t *testing.T) {
	t.Run("names are the flag values", func(t *testing.T) {
		for m, want := range map[PreviousTokenRevocation]string{
			PreviousTokensKept: "kept", RevokePreviousOnRefresh: "on_refresh", RevokePreviousOnNewToken: "on_new_token",
			PreviousTokenRevocation(7): "PreviousTokenRevocation(7)",
		} {
			if got := m.String(); got != want {
				t.Errorf("String(%d): got %q, want %q", int(m), got, want)
			}
		}
	})

	t.Run("on_refresh: each refresh ends the token of the refresh before", func(t *testing.T) {
		clock := newClock()
		s, c := start(t, Options{Now: clock.Now})
		s.SetPreviousTokenRevocation(RevokePreviousOnRefresh)
		first := mint(t, c, s, Echo360)
		var prev response = first
		for i := range 3 {
			clock.Advance(time.Minute)
			next := refresh(t, c, s, Echo360, prev.str(t, "refresh_token"))
			wantStatus(t, next, http.StatusOK)
			wantRevoked(t, c, s, fmt.Sprintf("token before refresh %d", i+1), prev.str(t, "access_token"), clock.Now())
			wantLive(t, c, s, fmt.Sprintf("token of refresh %d", i+1), next.str(t, "access_token"))
			prev = next
		}
		if at, _ := s.RevokedAt(first.str(t, "access_token")); !at.Equal(clock.Now().Add(-2 * time.Minute)) {
			t.Errorf("RevokedAt(first): got %v, want the first refresh's time %v (not moved by later ones)", at, clock.Now().Add(-2*time.Minute))
		}
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 3})
	})

	t.Run("on_refresh: a reused refresh token revokes its chain's access tokens", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetPreviousTokenRevocation(RevokePreviousOnRefresh)
		first := mint(t, c, s, OAuth2)
		second := refresh(t, c, s, OAuth2, first.str(t, "refresh_token"))
		wantStatus(t, second, http.StatusOK)
		wantRefusal(t, refresh(t, c, s, OAuth2, first.str(t, "refresh_token")), defaultRefusal(OAuth2))
		if s.Valid(second.str(t, "access_token")) {
			t.Errorf("Valid(token of the chain after a reuse): got true, want false")
		}
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 1, Reuses: 1})
		// Unlike fosite, the fake keeps the chain's newest refresh token.
		wantStatus(t, refresh(t, c, s, OAuth2, second.str(t, "refresh_token")), http.StatusOK)
	})

	t.Run("on_refresh: a reuse within the grace is a refresh: it ends the chain's tokens", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetPreviousTokenRevocation(RevokePreviousOnRefresh)
		s.SetRefreshReuseGrace(time.Minute)
		first := mint(t, c, s, OAuth2)
		second := refresh(t, c, s, OAuth2, first.str(t, "refresh_token"))
		again := refresh(t, c, s, OAuth2, first.str(t, "refresh_token")) // within the grace
		wantStatus(t, again, http.StatusOK)
		if s.Valid(second.str(t, "access_token")) {
			t.Errorf("Valid(token of the first rotation after a grace reuse): got true, want false")
		}
		wantLive(t, c, s, "token of the grace reuse", again.str(t, "access_token"))
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 2, GraceReuses: 1})
	})

	t.Run("on_new_token: an expired token is not revoked", func(t *testing.T) {
		clock := newClock()
		s, c := start(t, Options{Now: clock.Now, Lifetime: time.Minute})
		s.SetPreviousTokenRevocation(RevokePreviousOnNewToken)
		old := mint(t, c, s, OAuth2).str(t, "access_token")
		clock.Advance(time.Minute)
		wantStatus(t, mint(t, c, s, OAuth2), http.StatusOK)
		if at, ok := s.RevokedAt(old); ok {
			t.Errorf("RevokedAt(expired token): got %v, true; want false", at)
		}
		if got := s.RevokedTokens(); got != 0 {
			t.Errorf("RevokedTokens: got %d, want 0", got)
		}
	})

	t.Run("on_new_token: a client's tokens on another dialect are another provider's", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetPreviousTokenRevocation(RevokePreviousOnNewToken)
		echo := mint(t, c, s, Echo360).str(t, "access_token")
		wantStatus(t, mint(t, c, s, OAuth2), http.StatusOK)
		wantLive(t, c, s, "echo360 token", echo)
	})

	t.Run("on_new_token: a lost answer still ends the previous token", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetPreviousTokenRevocation(RevokePreviousOnNewToken)
		old := mint(t, c, s, Echo360).str(t, "access_token")
		s.Fail(1, FailDropAfterConsume)
		if resp, err := c.PostForm(s.URL()+PathEcho360Token, ccForm(testClientID, testClientSecret)); err == nil {
			resp.Body.Close()
			t.Fatalf("dropped mint: got a response (%d), want none", resp.StatusCode)
		}
		if s.Valid(old) {
			t.Errorf("Valid(token before the lost mint): got true, want false")
		}
	})

	t.Run("on_new_token: of concurrent grants, only the last token lives", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetPreviousTokenRevocation(RevokePreviousOnNewToken)
		const n = 16
		tokens := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { // no t.Fatal off the test's goroutine: errors leave the slot empty
				defer wg.Done()
				resp, err := c.PostForm(s.URL()+PathOAuth2Token, ccForm(testClientID, testClientSecret))
				if err != nil {
					return
				}
				defer resp.Body.Close()
				var body struct {
					AccessToken string `json:"access_token"`
				}
				if json.NewDecoder(resp.Body).Decode(&body) == nil {
					tokens[i] = body.AccessToken
				}
			}()
		}
		wg.Wait()
		live := 0
		for i, tok := range tokens {
			if tok == "" {
				t.Fatalf("mint %d: got no token, want one", i)
			}
			if s.Valid(tok) {
				live++
			}
		}
		if live != 1 || s.RevokedTokens() != n-1 {
			t.Errorf("after %d concurrent mints: got %d live and %d revoked, want 1 and %d", n, live, s.RevokedTokens(), n-1)
		}
	})

	t.Run("kept again stops revoking; Reset keeps the switch and zeroes the count", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetPreviousTokenRevocation(RevokePreviousOnNewToken)
		mint(t, c, s, OAuth2)
		mint(t, c, s, OAuth2)
		s.Reset()
		if got := s.RevokedTokens(); got != 0 {
			t.Errorf("RevokedTokens after Reset: got %d, want 0", got)
		}
		a := mint(t, c, s, OAuth2).str(t, "access_token")
		mint(t, c, s, OAuth2)
		if s.Valid(a) {
			t.Errorf("Valid after Reset: got true, want false (the switch survives Reset)")
		}
		s.SetPreviousTokenRevocation(PreviousTokensKept)
		b := mint(t, c, s, OAuth2).str(t, "access_token")
		mint(t, c, s, OAuth2)
		wantLive(t, c, s, "token under kept", b)
	})

	t.Run("RevokedAt of an unknown token", func(t *testing.T) {
		s, _ := start(t, Options{})
		if at, ok := s.RevokedAt("at_nope"); ok {
			t.Errorf("RevokedAt(unknown): got %v, true; want false", at)
		}
	})
}
