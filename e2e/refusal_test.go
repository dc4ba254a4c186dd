//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// Every way providers refuse a refresh, in a real Vault: a config that can
// mint recovers through reads alone (the same read that saw the refusal mints
// a new chain), and the refused refresh token is never sent again.
func TestRefusedRefreshRecoversThroughReads(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	shapes := []fakeprovider.RefusalShape{
		fakeprovider.RefuseInvalidGrant, fakeprovider.RefuseInvalidRequest, fakeprovider.RefuseInvalidToken,
		fakeprovider.RefuseUnsupportedGrantType, fakeprovider.RefuseErrorIn200, fakeprovider.RefusePlainText403,
	}
	for _, shape := range shapes {
		t.Run(shape.String(), func(t *testing.T) {
			name := strings.ToLower(shape.String())
			v.WriteConfig(name, fake.ConfigArgs("echo360")...)
			first := v.ReadCreds(name)
			v.Must("delete", mountPath+"/creds/"+name) // the next read must use the refresh token
			fake.RefuseRefreshes(1, shape)
			next := v.ReadCreds(name)
			if next.AccessToken == first.AccessToken || !fake.Valid(next.AccessToken) {
				t.Fatalf("read after a %s refusal returned %q (valid at the provider: %v); want a new valid token", shape, next.AccessToken, fake.Valid(next.AccessToken))
			}
			status := v.JSON("read", "-format=json", mountPath+"/status/"+name)["data"].(map[string]any)
			if status["needs_refresh_token"] != false || status["refresh_token_held"] != true {
				t.Fatalf("status after recovery = %v; want a new chain held and no operator action", status)
			}
		})
	}
	if n := fake.RefreshReuses(); n != 0 {
		t.Fatalf("refresh token reuses at the provider = %d, want 0", n)
	}
}

// A seed-only chain whose refresh token is refused reaches needs_refresh_token
// with a clear message, and recovers when an operator writes a new refresh
// token: to the config, or through creds/<name>/reset.
func TestSeedOnlyChainNeedsAndTakesANewSeed(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	for _, via := range []string{"config", "reset"} {
		t.Run(via, func(t *testing.T) {
			name := "seeded-" + via
			args := fake.ConfigArgs("echo360", "refresh_token="+fake.SeedRefreshToken(fakeprovider.Echo360, fakeClientID))
			v.WriteConfig(name, withoutKey(args, "client_secret")...)
			v.ReadCreds(name)
			v.Must("delete", mountPath+"/creds/"+name)
			fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidRequest)

			r := v.Run("read", mountPath+"/creds/"+name)
			if r.Code == 0 || !strings.Contains(r.Stderr, "write a new refresh_token to config/"+name) {
				t.Fatalf("read of a dead seed-only chain: %s\nwant a failure naming the fix", r)
			}
			status := v.JSON("read", "-format=json", mountPath+"/status/"+name)["data"].(map[string]any)
			if status["needs_refresh_token"] != true || status["healthy"] != false {
				t.Fatalf("status = %v; want needs_refresh_token and unhealthy", status)
			}

			seed := "refresh_token=" + fake.SeedRefreshToken(fakeprovider.Echo360, fakeClientID)
			if via == "config" {
				v.WriteConfig(name, seed)
			} else {
				v.Must("write", mountPath+"/creds/"+name+"/reset", seed)
			}
			if c := v.ReadCreds(name); !fake.Valid(c.AccessToken) {
				t.Fatalf("token after a new seed is not valid at the provider")
			}
		})
	}
	if n := fake.RefreshReuses(); n != 0 {
		t.Fatalf("refresh token reuses at the provider = %d, want 0", n)
	}
}

// withoutKey drops the key=value arguments of key.
func withoutKey(args []string, key string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, key+"=") {
			out = append(out, a)
		}
	}
	return out
}
