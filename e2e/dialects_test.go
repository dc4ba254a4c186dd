//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// Every provider dialect, through Vault, against the fake over HTTPS with the
// fake's CA given as ca_pem=@file: the first read mints a token the provider
// accepts, the next read is served from the cache, a read inside the refresh
// window still gets the cached token while a background refresh replaces it,
// and after a full expiry a read mints again; refresh tokens are never reused.
func TestDialects(t *testing.T) {
	t.Parallel()
	// The plugin never hands out a token with less than 2s left (it would die in
	// transit), so the refresh window must be wider than that for reads inside
	// it to be served from the cache: window = min(refresh_ahead, lifetime/2) = 5s.
	const (
		lifetime     = 10 * time.Second
		refreshAhead = 5 * time.Second
	)
	for _, d := range dialects {
		t.Run(d.provider, func(t *testing.T) {
			t.Parallel()
			v := StartVaultWithPlugin(t)
			fake := StartFake(t, lifetime)
			v.WriteConfig("d", fake.ConfigArgs(d.provider, "refresh_ahead="+refreshAhead.String())...)

			before := time.Now()
			first := v.ReadCreds("d")
			checkCreds(t, fake, first, before, lifetime)
			calls := fake.TotalCalls()
			if calls < 1 {
				t.Fatalf("fake saw %d calls after the first read", calls)
			}

			second := v.ReadCreds("d")
			if second.AccessToken != first.AccessToken {
				t.Errorf("second read returned a new token; want the cached one")
			}
			if got := fake.TotalCalls(); got != calls {
				t.Errorf("second read made %d upstream call(s); want 0 (cached)", got-calls)
			}

			// Inside the refresh window a read never waits for the provider: it
			// gets the cached token, or the one the refresh scheduler already
			// obtained (at the window's start plus the name's delay) before the
			// read began. (expires_at has whole seconds, so aim 3.5s before it:
			// 3–4.5s left, inside the window.)
			sleepUntil(first.ExpiresAt.Add(-3500 * time.Millisecond))
			readAt := time.Now()
			inWindow := v.ReadCreds("d")
			if inWindow.AccessToken != first.AccessToken {
				if issued := inWindow.ExpiresAt.Add(-lifetime); issued.After(readAt.Add(time.Second)) {
					t.Errorf("read inside the refresh window got a token issued at %s, after the read began at %s: it waited for the provider",
						issued.Format(time.TimeOnly), readAt.Format(time.TimeOnly))
				}
			}
			var next Creds
			eventually(t, refreshAhead+5*time.Second, 200*time.Millisecond, "a refreshed token", func() bool {
				next = v.ReadCreds("d")
				return next.AccessToken != first.AccessToken
			})
			// The new token was issued before the old one expired (judged by the
			// provider's timestamps, so a slow CLI on a loaded machine does not matter).
			if issued := next.ExpiresAt.Add(-lifetime); issued.After(first.ExpiresAt) {
				t.Errorf("the refreshed token was issued at %s, after the old one expired at %s",
					issued.Format(time.TimeOnly), first.ExpiresAt.Format(time.TimeOnly))
			}
			checkCreds(t, fake, next, before, lifetime)

			// No reads until that token has expired too: the scheduler keeps
			// renewing the chain meanwhile, so the next read gets a newer token.
			sleepUntil(next.ExpiresAt.Add(500 * time.Millisecond))
			eventually(t, 5*time.Second, 100*time.Millisecond, "the fake to expire the token",
				func() bool { return !fake.Valid(next.AccessToken) })
			third := v.ReadCreds("d")
			if third.AccessToken == next.AccessToken || third.AccessToken == first.AccessToken {
				t.Errorf("read after expiry returned an old token")
			}
			checkCreds(t, fake, third, before, lifetime)

			if n := fake.RefreshReuses(); n != 0 {
				t.Errorf("fake saw %d reused refresh token(s); want 0", n)
			}
			// A mint, then at most one renewal per refresh interval (lifetime less
			// the window) while the test ran, plus one for a read's own refresh.
			if n, most := fake.TotalCalls(), 2+int(time.Since(before)/(lifetime-refreshAhead)); n > most {
				t.Errorf("%d upstream calls in %s; want ≤ %d", n, time.Since(before).Round(time.Second), most)
			}
			if d.refresh && fake.Grants("refresh_token") < 1 {
				t.Errorf("no refresh grant used for %s (grants: client_credentials=%d refresh_token=%d)",
					d.provider, fake.Grants("client_credentials"), fake.Grants("refresh_token"))
			}
			t.Logf("%s: upstream calls=%d refresh grants=%d", d.provider, fake.TotalCalls(), fake.Grants("refresh_token"))
		})
	}
}

// checkCreds checks a creds response: a token the fake accepts, no Vault lease,
// and consistent expiry fields.
func checkCreds(t *testing.T, fake *Fake, c Creds, notBefore time.Time, lifetime time.Duration) {
	t.Helper()
	if !fake.Valid(c.AccessToken) {
		t.Errorf("the fake does not accept the returned access token")
	}
	if c.LeaseID != "" || c.LeaseDuration != 0 {
		t.Errorf("creds carry a Vault lease (%q, %ds); want none", c.LeaseID, c.LeaseDuration)
	}
	if c.TokenType == "" {
		t.Errorf("token_type is empty")
	}
	if c.ExpiresAt.Unix() != c.ExpiresAtSeconds {
		t.Errorf("expires_at %s and expires_at_seconds %d disagree", c.ExpiresAt, c.ExpiresAtSeconds)
	}
	if c.ExpiresAt.Before(notBefore) || c.ExpiresAt.After(time.Now().Add(lifetime+2*time.Second)) {
		t.Errorf("expires_at %s is not within the token lifetime %s", c.ExpiresAt, lifetime)
	}
	if want := int64(lifetime / time.Second); c.RotationPeriod < want-1 || c.RotationPeriod > want+1 {
		t.Errorf("rotation_period = %d, want ≈%d", c.RotationPeriod, want)
	}
	// At least 5 s (no spinning Agent), unless that would bring Agent (back at
	// ttl+1 s) after the token expired: then a second before expiry at most.
	left := int64(time.Until(c.ExpiresAt) / time.Second)
	if want := min(int64(5), left-2); c.TTL < want || c.TTL > max(5, left+1) {
		t.Errorf("ttl = %d with %d s left, want between %d and %d", c.TTL, left, want, max(5, left+1))
	}
}
