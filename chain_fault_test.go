package tokenbroker

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestFaultEveryFailureClass: random trials over every failure class of a
// refresh (seven refusal shapes, a lost answer, two outages, or none), for
// every dialect that refreshes, with and without the means to mint, and a
// seed-only chain inside a reuse grace. Over all trials: no refresh token
// is ever sent twice outside the grace, no config that can mint is stuck,
// and a seed-only chain needs a new seed only when its token was refused,
// or lost with no grace to resend it in.
func TestFaultEveryFailureClass(t *testing.T) {
	n := faultTrials(10)
	classes := refreshFailures()
	cases := []struct {
		name    string
		dialect fakeprovider.Dialect
		seed    map[string]any // nil: the config can mint
		grace   time.Duration  // the provider's and the config's refresh reuse grace
	}{
		{"oauth2 can mint", fakeprovider.OAuth2, nil, 0},
		{"echo360 can mint", fakeprovider.Echo360, nil, 0},
		{"apivideo can mint", fakeprovider.APIVideo, nil, 0},
		{"echo360 seed only", fakeprovider.Echo360, map[string]any{"client_secret": nil}, 0},
		{"apivideo seed only", fakeprovider.APIVideo, map[string]any{"api_key": nil}, 0},
		{"echo360 seed only in a 30m grace", fakeprovider.Echo360, map[string]any{"client_secret": nil}, 30 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := trialRand(t)
			e := newFaultEnv(t)
			e.fake.SetRefreshReuseGrace(tc.grace)
			reseed := func() {
				e.mustDo(logical.UpdateOperation, "creds/x/reset", map[string]any{"refresh_token": e.fake.SeedRefreshToken(tc.dialect, testClientID)})
			}
			if tc.seed == nil {
				e.config("x", tc.dialect, nil)
			} else {
				e.seedConfig("x", tc.dialect, withFields(tc.seed, map[string]any{"refresh_reuse_grace": int(tc.grace.Seconds())}))
			}
			e.token("x")
			stuck, reseeds, unexpectedReseeds := 0, 0, 0
			for trial := range n {
				e.clock.Add(2 * time.Hour)
				pick := rng.IntN(len(classes) + 1) // one more: no failure at all
				class, inject := classes[pick%len(classes)], pick < len(classes)
				if inject {
					class.inject(e.fake)
				}
				_, err := e.creds("x", nil)
				if err == nil {
					continue
				}
				switch {
				case inject && !class.spends:
					// An outage: the read fails, the next one succeeds with the same chain.
					if _, err := e.creds("x", nil); err != nil {
						stuck++
						t.Errorf("trial %d: read after a %s outage: %v", trial, class.name, err)
					}
				case tc.seed != nil && isNeedsRefreshToken(err):
					reseeds++
					if tc.grace > 0 && class.name == "lost answer" {
						unexpectedReseeds++ // the grace should have saved it
						t.Errorf("trial %d: a lost refresh inside the grace ended the chain: %v", trial, err)
					}
					reseed()
				default:
					stuck++
					t.Errorf("trial %d (%s, injected %v): %v", trial, class.name, inject, err)
				}
				e.fake.ClearFailures()
			}
			t.Logf("FAULT every-failure-class %s: trials=%d reuses=%d grace_reuses=%d stuck=%d reseeds_needed=%d",
				tc.name, n, e.fake.RefreshReuses(), e.fake.RefreshGraceReuses(), stuck, reseeds)
			expect(t, "refresh token reuses outside a grace", e.fake.RefreshReuses(), 0)
			expect(t, "configs stuck", stuck, 0)
			expect(t, "seed-only chains lost inside the grace", unexpectedReseeds, 0)
		})
	}
}
