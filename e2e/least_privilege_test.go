//go:build e2e

package e2e

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// wantDenied fails unless r is Vault's 403 permission denied.
func wantDenied(t *testing.T, what string, r Result) {
	t.Helper()
	if r.Code == 0 || !strings.Contains(r.Stderr, "403") || !strings.Contains(r.Stderr, "permission denied") {
		t.Errorf("%s: want 403 permission denied, got %s", what, r)
	}
}

// TestLeastPrivilegePolicies: in a real Vault, a team policy on a role's
// path reads the role's narrowed token and cannot read the config's wide
// one; allowed_parameters on creds/<name> pins a scope. Vault checks
// allowed_parameters on reads against the GET's query parameters (its ACL
// checks them for read operations, http/handler.go's parseQuery making them
// the request's data), but allows a read with no parameters at all, so
// pinning a scope takes required_parameters too: both are shown.
func TestLeastPrivilegePolicies(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	v.WriteConfig("reports", fake.ConfigArgs("oauth2", "scopes=reports:read,reports:write", "allowed_scopes=reports:read,reports:write")...)
	v.Must("write", mountPath+"/role/reporting", "config=reports", "scope=reports:read")

	team := v.tokenWithPolicy("reporting", `path "tokenbroker/role/reporting/creds" { capabilities = ["read"] }`)
	r := v.RunAs(team, "read", "-format=json", mountPath+"/role/reporting/creds")
	if r.Code != 0 {
		t.Fatalf("the team cannot read its role's token: %s", r)
	}
	narrowed := decodeCreds(t, r.Stdout).AccessToken
	if !fake.Valid(narrowed) || fake.IssuedFor("reports:read") != 1 {
		t.Fatalf("role token: valid %v, tokens issued for reports:read %d; want a valid token for reports:read", fake.Valid(narrowed), fake.IssuedFor("reports:read"))
	}
	wantDenied(t, "the team reading the wide token", v.RunAs(team, "read", mountPath+"/creds/reports"))
	wantDenied(t, "the team reading the role", v.RunAs(team, "read", mountPath+"/role/reporting"))
	wantDenied(t, "the team writing the role", v.RunAs(team, "write", mountPath+"/role/reporting", "scope=reports:write"))

	pinned := v.tokenWithPolicy("pinned", `path "tokenbroker/creds/reports" {
  capabilities        = ["read"]
  required_parameters = ["scope"]
  allowed_parameters  = { "scope" = ["reports:read"] }
}`)
	r = v.RunAs(pinned, "read", "-format=json", mountPath+"/creds/reports", "scope=reports:read")
	if r.Code != 0 {
		t.Fatalf("a read of the pinned scope: %s", r)
	}
	expectEqual(t, "token of the pinned scope (the role's variant)", decodeCreds(t, r.Stdout).AccessToken, narrowed)
	wantDenied(t, "a read of another scope", v.RunAs(pinned, "read", mountPath+"/creds/reports", "scope=reports:write"))
	wantDenied(t, "a read with the pinned scope and another parameter", v.RunAs(pinned, "read", mountPath+"/creds/reports", "scope=reports:read", "audience=x"))
	wantDenied(t, "a read without scope (required_parameters)", v.RunAs(pinned, "read", mountPath+"/creds/reports"))

	// Without required_parameters, Vault lets a read with no parameters through.
	loose := v.tokenWithPolicy("loose", `path "tokenbroker/creds/reports" {
  capabilities       = ["read"]
  allowed_parameters = { "scope" = ["reports:read"] }
}`)
	wantDenied(t, "allowed_parameters alone, another scope", v.RunAs(loose, "read", mountPath+"/creds/reports", "scope=reports:write"))
	if r := v.RunAs(loose, "read", mountPath+"/creds/reports"); r.Code != 0 {
		t.Errorf("allowed_parameters alone, no parameter: Vault allowed it before; now %s", r)
	} else {
		t.Log("Vault's ACL allows a request without data whatever allowed_parameters says (vault/acl.go); required_parameters closes it")
	}
}

// TestNarrowedRefreshFaultsInVault: a single-use refresh chain read plain
// and narrowed in turn in a real Vault, with lost answers and refusals
// injected at random: no refresh token is ever sent twice, and every read
// after a fault is served.
func TestNarrowedRefreshFaultsInVault(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 3*time.Second)
	v.WriteConfig("chain", fake.ConfigArgs("oauth2", "allowed_scopes=read,write", "refresh_ahead=1")...)
	v.ReadCreds("chain")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	reads := [][]string{nil, {"scope=read"}, {"scope=write"}}
	faults := []func(){
		func() {},
		func() { fake.Fail(1, fakeprovider.FailDropAfterConsume) },
		func() { fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant) },
		func() { fake.Fail(1, fakeprovider.Fail500) },
	}
	for trial := range 12 {
		time.Sleep(3 * time.Second) // every token expired: each read renews
		faults[rng.IntN(len(faults))]()
		args := append([]string{"read", "-format=json", mountPath + "/creds/chain"}, reads[rng.IntN(len(reads))]...)
		if r := v.Run(args...); r.Code != 0 {
			if r = v.Run(args...); r.Code != 0 { // an outage: the next read is served
				t.Errorf("trial %d: %v: %s", trial, args, r)
			}
		}
		fake.ClearFailures()
	}
	t.Logf("refresh grants %d, narrowed tokens issued for read %d and write %d", fake.Grants("refresh_token"), fake.IssuedFor("read"), fake.IssuedFor("write"))
	if fake.Grants("refresh_token") == 0 || fake.IssuedFor("read")+fake.IssuedFor("write") == 0 {
		t.Error("the trials made no refresh or no narrowed token: nothing was tested")
	}
	if n := fake.RefreshReuses(); n != 0 {
		t.Errorf("refresh tokens sent twice: %d", n)
	}
}

func expectEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}
