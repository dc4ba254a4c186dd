package tokenbroker

// Obtaining a token: concurrent callers share one upstream call, a caller
// that hangs up does not cut it, and only a node that can write storage
// makes it.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// A read that must wait for the provider joins a background refresh already
// in flight. If that call did not meet the read's need (it failed), the read
// makes its own call instead of settling for the cached token with a warning.
func TestWaitingReadJoinsBackgroundRefresh(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      bool // the background refresh fails
		wantCalls int
	}{
		{"background refresh succeeds: one shared call", false, 2},
		{"background refresh fails: the read makes its own", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetLifetime(time.Hour)
			e.config("x", fakeprovider.Echo360, nil)
			first := e.token("x")
			e.clock.Add(56 * time.Minute) // in the window, 4 min left
			e.fake.SetLatency(300 * time.Millisecond)
			if tc.fail {
				e.fake.Fail(1, fakeprovider.Fail500)
			}
			expect(t, "token inside the window (starts the background refresh)", e.token("x"), first)

			// 10 min wanted, 4 left: this read waits, joining the refresh in flight.
			resp := e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "10m"})
			if resp.Data["access_token"] == first || len(resp.Warnings) != 0 {
				t.Fatalf("min_ttl read: token %v (cached %q), warnings %v; want a new token, no warning", resp.Data["access_token"], first, resp.Warnings)
			}
			expect(t, "upstream calls (the mint included)", e.fake.TotalCalls(), tc.wantCalls)
			expect(t, "refresh grants", e.fake.Grants("refresh_token"), 1)
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
		})
	}
}

func TestRequestContextCancelDoesNotCutRefresh(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.SetLatency(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "creds/x", Storage: e.storage})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read with a 50 ms deadline: err = %v, want context.DeadlineExceeded", err)
	}
	e.settle("x")
	e.fake.SetLatency(0)
	e.token("x")
	expect(t, "refresh grants (the abandoned one completed, none repeated)", e.fake.Grants("refresh_token"), 1)
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
	expect(t, "upstream calls", e.fake.TotalCalls(), 2)
}

func TestReadOnlyNodeNeverCallsProvider(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	first := e.token("x")
	e.standby()
	expect(t, "standby's token while the cached one is valid", e.token("x"), first)

	e.clock.Add(2 * time.Hour)
	calls := e.fake.TotalCalls()
	if _, err := e.creds("x", nil); !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("standby read of an expired token: err = %v, want logical.ErrReadOnly (Vault forwards it)", err)
	}
	if err := e.periodic(); err != nil {
		t.Fatalf("standby's periodic pass: %v", err)
	}
	if _, err := e.do(logical.DeleteOperation, "creds/x", nil); !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("standby creds delete: err = %v, want logical.ErrReadOnly", err)
	}
	expect(t, "upstream calls by the standby", e.fake.TotalCalls(), calls)
}
