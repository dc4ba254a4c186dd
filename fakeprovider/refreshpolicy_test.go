package fakeprovider

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// wantAnnounced checks which refresh-lifetime field r carries.
func wantAnnounced(t *testing.T, r response, field RefreshExpiryField, secs int) {
	t.Helper()
	want := map[string]any{"refresh_token_expires_in": nil, "x_refresh_token_expires_in": nil}
	if field != NoRefreshExpiryField {
		want[field.String()] = float64(secs)
	}
	wantFields(t, r, want)
}

func TestRefreshTokenLifetime(t *testing.T) {
	const lifetime = 10 * time.Minute
	for _, d := range refreshDialects {
		for _, field := range []RefreshExpiryField{NoRefreshExpiryField, RefreshTokenExpiresIn, XRefreshTokenExpiresIn} {
			t.Run(fmt.Sprintf("%s/%v", d, field), func(t *testing.T) {
				clock := newClock()
				s, c := start(t, Options{Now: clock.Now})
				s.SetRefreshTokenLifetime(lifetime, field)
				first := mint(t, c, s, d)
				wantAnnounced(t, first, field, 600)

				clock.Advance(lifetime - time.Second) // still valid
				second := refresh(t, c, s, d, first.str(t, "refresh_token"))
				wantStatus(t, second, http.StatusOK)
				wantAnnounced(t, second, field, 600)

				clock.Advance(lifetime) // the second token expired
				rt2 := second.str(t, "refresh_token")
				wantRefusal(t, refresh(t, c, s, d, rt2), defaultRefusal(d))
				wantRefusal(t, refresh(t, c, s, d, rt2), defaultRefusal(d))
				want := minted(d, 1)
				want.RefreshToken, want.Reuses = 1, 1
				wantCounts(t, s, want)
			})
		}
	}

	t.Run("expired tokens are refused in the configured shape", func(t *testing.T) {
		clock := newClock()
		s, c := start(t, Options{Now: clock.Now})
		s.SetRefreshTokenLifetime(time.Minute, NoRefreshExpiryField)
		s.SetRefreshRefusal(Echo360, RefuseInvalidToken)
		rt := s.SeedRefreshToken(Echo360, testClientID) // seeded tokens expire too
		clock.Advance(time.Minute)
		wantRefusal(t, refresh(t, c, s, Echo360, rt), RefuseInvalidToken)
	})

	t.Run("lifetimes are whole seconds, at least 1", func(t *testing.T) {
		clock := newClock()
		s, c := start(t, Options{Now: clock.Now})
		s.SetRefreshTokenLifetime(1500*time.Millisecond, RefreshTokenExpiresIn)
		r := mint(t, c, s, OAuth2)
		wantAnnounced(t, r, RefreshTokenExpiresIn, 1)
		clock.Advance(time.Second)
		wantRefusal(t, refresh(t, c, s, OAuth2, r.str(t, "refresh_token")), RefuseInvalidGrant)
	})

	t.Run("tokens issued before the switch keep their lifetime", func(t *testing.T) {
		clock := newClock()
		s, c := start(t, Options{Now: clock.Now})
		old := s.SeedRefreshToken(Echo360, testClientID)
		s.SetRefreshTokenLifetime(time.Minute, NoRefreshExpiryField)
		clock.Advance(time.Hour)
		wantStatus(t, refresh(t, c, s, Echo360, old), http.StatusOK)
	})

	t.Run("d <= 0 restores tokens that never expire", func(t *testing.T) {
		clock := newClock()
		s, c := start(t, Options{Now: clock.Now})
		s.SetRefreshTokenLifetime(time.Minute, XRefreshTokenExpiresIn)
		s.SetRefreshTokenLifetime(0, XRefreshTokenExpiresIn)
		r := mint(t, c, s, Echo360)
		wantAnnounced(t, r, NoRefreshExpiryField, 0)
		clock.Advance(365 * 24 * time.Hour) // Echo360: "refresh tokens never expire"
		wantStatus(t, refresh(t, c, s, Echo360, r.str(t, "refresh_token")), http.StatusOK)
	})
}

func TestRefreshReuseGrace(t *testing.T) {
	for _, d := range refreshDialects {
		for _, tc := range []struct {
			name  string
			grace time.Duration
		}{
			{"no grace (default)", 0},
			{"Okta's default leeway of 30s", 30 * time.Second},
			{"Xero's 30 minutes", 30 * time.Minute},
		} {
			t.Run(fmt.Sprintf("%s/%s", d, tc.name), func(t *testing.T) {
				clock := newClock()
				s, c := start(t, Options{Now: clock.Now})
				s.SetRefreshReuseGrace(tc.grace)
				rt1 := mint(t, c, s, d).str(t, "refresh_token")
				second := refresh(t, c, s, d, rt1)
				wantStatus(t, second, http.StatusOK)
				rt2 := second.str(t, "refresh_token")
				s.Reset()

				if tc.grace > 0 {
					clock.Advance(tc.grace - time.Second)
					again := refresh(t, c, s, d, rt1) // within the grace: fresh tokens
					wantStatus(t, again, http.StatusOK)
					if rt3 := again.str(t, "refresh_token"); rt3 == rt2 || rt3 == rt1 {
						t.Errorf("refresh_token within the grace: got an earlier token, want a fresh one")
					}
					wantCounts(t, s, counts{RefreshToken: 1, GraceReuses: 1})
					wantStatus(t, refresh(t, c, s, d, rt2), http.StatusOK) // the first rotation's token still works
					clock.Advance(time.Second)
				}
				wantRefusal(t, refresh(t, c, s, d, rt1), defaultRefusal(d)) // outside any grace
				if got := s.RefreshReuses(); got != 1 {
					t.Errorf("RefreshReuses: got %d, want 1", got)
				}
			})
		}
	}

	t.Run("the grace does not cover a refused token", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetRefreshReuseGrace(time.Hour)
		rt := s.SeedRefreshToken(OAuth2, testClientID)
		s.RefuseRefreshes(1, RefuseInvalidGrant)
		wantRefusal(t, refresh(t, c, s, OAuth2, rt), RefuseInvalidGrant)
		wantRefusal(t, refresh(t, c, s, OAuth2, rt), RefuseInvalidGrant)
		wantCounts(t, s, counts{Reuses: 1})
	})

	t.Run("a client that lost the refresh response can retry within the grace", func(t *testing.T) {
		s, c := start(t, Options{})
		s.SetRefreshReuseGrace(time.Minute)
		rt := s.SeedRefreshToken(Echo360, testClientID)
		s.Fail(1, FailDropAfterConsume)
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}}
		if resp, err := c.PostForm(s.URL()+PathEcho360Token, form); err == nil {
			resp.Body.Close()
			t.Fatalf("dropped refresh: got a response (%d), want none", resp.StatusCode)
		}
		wantStatus(t, refresh(t, c, s, Echo360, rt), http.StatusOK)
		wantCounts(t, s, counts{RefreshToken: 2, GraceReuses: 1})
	})
}
