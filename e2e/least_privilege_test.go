//go:build e2e

package e2e

import (
	"math/rand/v2"
	"slices"
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

// TestExchangeRoleInVault: a role with exchange=true in a real Vault. A
// team whose policy names only the role's path reads a token the provider
// issued by RFC 8693 token exchange of the config's token, for the role's
// audience: another token than the config's, obtained once and served from
// cache after. The team cannot read the config's own token. An exchange the
// provider refuses (invalid_target) is a 400 naming the cause, and the
// config's chain and the other role's token are untouched.
func TestExchangeRoleInVault(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	// The provider exchanges a token for the client it was issued to, and
	// only for the orders API; the config allows billing too, so billing's
	// refusal comes from the provider, not the plugin's bounds.
	const orders, billing = "https://orders.example.test", "https://billing.example.test"
	fake.SetTokenExchange(fakeprovider.TokenExchangeSameClient)
	fake.SetClientPolicy(fakeClientID, fakeprovider.ClientPolicy{Audiences: []string{orders}})
	v.WriteConfig("gateway", fake.ConfigArgs("oauth2", "allowed_audiences="+orders+","+billing)...)
	v.Must("write", mountPath+"/role/orders", "config=gateway", "exchange=true", "audience="+orders, "requested_token_type=access_token")
	v.Must("write", mountPath+"/role/billing", "config=gateway", "exchange=true", "audience="+billing)

	team := v.tokenWithPolicy("orders", `path "tokenbroker/role/orders/creds" { capabilities = ["read"] }`)
	r := v.RunAs(team, "read", "-format=json", mountPath+"/role/orders/creds")
	if r.Code != 0 {
		t.Fatalf("the team cannot read its exchange role's token: %s", r)
	}
	exchanged := decodeCreds(t, r.Stdout).AccessToken
	if !fake.Valid(exchanged) {
		t.Fatal("role/orders/creds: the provider does not accept the exchanged token")
	}
	expectEqual(t, "token exchange grants after the team's read", fake.Grants("token_exchange"), 1)
	expectEqual(t, "tokens issued for the orders audience", fake.IssuedFor("", orders), 1)
	if got := fake.Audiences(exchanged); !slices.Equal(got, []string{orders}) {
		t.Errorf("audiences of the exchanged token: got %v, want [%s]", got, orders)
	}
	main := v.ReadCreds("gateway").AccessToken
	if main == exchanged || !fake.Valid(main) || fake.Audiences(main) != nil {
		t.Errorf("config's own token: same as the exchanged one %v, valid %v, audiences %v; want another valid token for no audience",
			main == exchanged, fake.Valid(main), fake.Audiences(main))
	}
	expectEqual(t, "client credentials grants (the config's token, the exchange's subject)", fake.Grants("client_credentials"), 1)

	// A second read is served from the role's cached token: no upstream call.
	calls := fake.TotalCalls()
	r = v.RunAs(team, "read", "-format=json", mountPath+"/role/orders/creds")
	if r.Code != 0 {
		t.Fatalf("the team's second read: %s", r)
	}
	expectEqual(t, "the second read's token", decodeCreds(t, r.Stdout).AccessToken, exchanged)
	expectEqual(t, "token exchange grants after the second read", fake.Grants("token_exchange"), 1)
	expectEqual(t, "upstream calls of the second read", fake.TotalCalls()-calls, 0)

	wantDenied(t, "the team reading the config's own token", v.RunAs(team, "read", mountPath+"/creds/gateway"))
	wantDenied(t, "the team reading the config's token narrowed to its audience", v.RunAs(team, "read", mountPath+"/creds/gateway", "audience="+orders))
	wantDenied(t, "the team reading the other role's token", v.RunAs(team, "read", mountPath+"/role/billing/creds"))
	wantDenied(t, "the team reading the role", v.RunAs(team, "read", mountPath+"/role/orders"))
	wantDenied(t, "the team rewriting the role", v.RunAs(team, "write", mountPath+"/role/orders", "audience="+billing))

	// The provider refuses billing's exchange: a 400 for that read, naming the cause.
	r = v.Run("read", "-format=json", mountPath+"/role/billing/creds")
	for _, want := range []string{"Code: 400", "the provider refused the narrowing asked", "invalid_target", billing} {
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("role/billing/creds, an exchange the provider refuses: want a failure whose message holds %q, got %s", want, r)
		}
	}
	expectEqual(t, "token exchange grants after the refusal", fake.Grants("token_exchange"), 1)
	expectEqual(t, "the config's token after the refusal", v.ReadCreds("gateway").AccessToken, main)
	r = v.RunAs(team, "read", "-format=json", mountPath+"/role/orders/creds")
	if r.Code != 0 {
		t.Fatalf("the team's read after the refusal: %s", r)
	}
	expectEqual(t, "role/orders' token after the refusal", decodeCreds(t, r.Stdout).AccessToken, exchanged)
	expectEqual(t, "client credentials grants after the refusal", fake.Grants("client_credentials"), 1)
}

func expectEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}
