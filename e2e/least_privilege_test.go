//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
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

// TestNarrowedSelfReadInVault: Vault users connect their own accounts to an
// app with allowed_scopes and read their own token narrowed to one scope: a
// token the provider issued for that scope from the user's own chain, not
// their connection's unnarrowed token, obtained once and cached. A scope
// outside allowed_scopes is a 400 naming it, before any provider call; and
// a narrowed read reaches nobody else's connection.
func TestNarrowedSelfReadInVault(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	const app = "notes"
	callback := v.Addr + "/v1/" + mountPath + "/callback"
	base := fake.URL()
	v.Must(append([]string{"write", mountPath + "/app/" + app}, fake.ConfigArgs("oauth2",
		"auth_url="+base+fakeprovider.PathAuthorize, "redirect_uri="+callback, "userinfo_url="+base+fakeprovider.PathUserinfo,
		"scopes=notes:read,notes:write", "allowed_scopes=notes:read")...)...)

	v.Must("auth", "enable", "userpass")
	v.Must("policy", "write", "tokenbroker-self", v.WriteFile("self.hcl", selfPolicy))
	type user struct{ name, token, entity, sub, email string }
	alice := user{name: "alice", sub: "fake-alice", email: "alice@example.test"}
	bob := user{name: "bob", sub: "fake-bob", email: "bob@example.test"}
	for _, u := range []*user{&alice, &bob} {
		u.token, u.entity = userpassLogin(t, v, u.name)
	}
	conn := func(u user) string { return app + "." + u.entity }
	// connect runs u's authorization: self/<app>/authorize, u's account at
	// the provider approves, and the provider's answer goes to Vault's callback.
	connect := func(u user) {
		t.Helper()
		r := v.RunAs(u.token, "write", "-format=json", "-force", mountPath+"/self/"+app+"/authorize")
		var out struct {
			Data struct{ URL, Connection string } `json:"data"`
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || out.Data.URL == "" {
			t.Fatalf("self/%s/authorize as %s: %s", app, u.name, r)
		}
		expectEqual(t, "the connection "+u.name+" starts", out.Data.Connection, conn(u))
		fake.SetAccount(u.sub, u.email)
		status, page := approveAtFake(t, fake, out.Data.URL)
		if want := conn(u) + " connected to the account " + u.email; status != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("the callback for %s: %d %q, want 200 with %q", u.name, status, page, want)
		}
	}
	// read reads u's self/<app> with args and returns the token.
	read := func(u user, args ...string) string {
		t.Helper()
		r := v.RunAs(u.token, append([]string{"read", "-format=json", mountPath + "/self/" + app}, args...)...)
		if r.Code != 0 {
			t.Fatalf("self/%s %v as %s: %s", app, args, u.name, r)
		}
		return decodeCreds(t, r.Stdout).AccessToken
	}
	// owner is the account the provider says authorized token.
	owner := func(token string) string {
		sub, _ := fake.AccountOf(token)
		return sub
	}

	connect(alice)
	wide := read(alice)
	if !fake.Valid(wide) || owner(wide) != alice.sub {
		t.Fatalf("alice's unnarrowed token: valid %v, account %q; want valid, %q", fake.Valid(wide), owner(wide), alice.sub)
	}
	narrowed := read(alice, "scope=notes:read")
	if narrowed == wide || !fake.Valid(narrowed) || owner(narrowed) != alice.sub || fake.IssuedFor("notes:read") != 1 {
		t.Fatalf("alice's token narrowed to notes:read: same as unnarrowed %v, valid %v, account %q, tokens issued for notes:read %d; want another valid token of %q, the one issued for notes:read",
			narrowed == wide, fake.Valid(narrowed), owner(narrowed), fake.IssuedFor("notes:read"), alice.sub)
	}
	expectEqual(t, "refresh grants (the narrowing)", fake.Grants("refresh_token"), 1)

	// Both are cached: neither read again calls the provider.
	calls := fake.TotalCalls()
	expectEqual(t, "alice's narrowed token read again", read(alice, "scope=notes:read"), narrowed)
	expectEqual(t, "alice's unnarrowed token after the narrowing", read(alice), wide)
	expectEqual(t, "upstream calls of the cached reads", fake.TotalCalls()-calls, 0)

	// A scope the app does not allow narrowing to, though the connection's
	// token holds it, is a 400 naming it; the provider is not asked.
	r := v.RunAs(alice.token, "read", mountPath+"/self/"+app, "scope=notes:write")
	for _, want := range []string{"Code: 400", `scope "notes:write" is not among the allowed scopes`} {
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("self/%s scope=notes:write: want a failure whose message holds %q, got %s", app, want, r)
		}
	}
	expectEqual(t, "upstream calls of the refused read", fake.TotalCalls()-calls, 0)

	// bob has no connection: no narrowed read reaches alice's.
	for _, path := range []string{"self/" + app, "self/" + conn(alice)} {
		expectHTTP(t, v, bob.name, bob.token, "GET", mountPath+"/"+path+"?scope=notes:read", http.StatusNotFound, "you have no connection of app")
	}
	expectHTTP(t, v, bob.name, bob.token, "GET", mountPath+"/creds/"+conn(alice)+"?scope=notes:read", http.StatusForbidden, "permission denied")
	expectEqual(t, "upstream calls of bob's attempts", fake.TotalCalls()-calls, 0)

	// Connected, bob's narrowed read is his own chain's, not alice's cached token.
	connect(bob)
	bobNarrowed := read(bob, "scope=notes:read")
	if bobNarrowed == narrowed || !fake.Valid(bobNarrowed) || owner(bobNarrowed) != bob.sub || fake.IssuedFor("notes:read") != 2 {
		t.Errorf("bob's token narrowed to notes:read: alice's %v, valid %v, account %q, tokens issued for notes:read %d; want another valid token of %q, the second issued for notes:read",
			bobNarrowed == narrowed, fake.Valid(bobNarrowed), owner(bobNarrowed), fake.IssuedFor("notes:read"), bob.sub)
	}
	expectEqual(t, "alice's narrowed token after bob's", read(alice, "scope=notes:read"), narrowed)
}

// userpassLogin makes a userpass user holding only the tokenbroker-self
// policy and logs in: the token and its entity.
func userpassLogin(t *testing.T, v *Vault, name string) (token, entity string) {
	t.Helper()
	password := randHex(t, 12)
	v.Must("write", "auth/userpass/users/"+name, "password="+password,
		"token_policies=tokenbroker-self", "token_no_default_policy=true", "token_ttl=30m")
	auth, _ := v.JSON("write", "-format=json", "auth/userpass/login/"+name, "password="+password)["auth"].(map[string]any)
	token, _ = auth["client_token"].(string)
	entity, _ = auth["entity_id"].(string)
	if token == "" || entity == "" {
		t.Fatalf("userpass login as %s: auth = %v, want a token with an entity", name, auth)
	}
	return token, entity
}

// approveAtFake plays the user's browser: the fake's account approves the
// authorization request authURL, and its answer is taken to the redirect
// URI (a redirect followed, or a form_post submitted). It returns the
// callback page's status and body.
func approveAtFake(t *testing.T, fake *Fake, authURL string) (int, string) {
	t.Helper()
	answer, err := fake.Respond(authURL)
	if err != nil {
		t.Fatalf("the provider refuses the authorization request: %v", err)
	}
	client := &http.Client{Timeout: cliTimeout}
	var resp *http.Response
	if answer.FormPost {
		resp, err = client.PostForm(answer.RedirectURI, answer.Params)
	} else {
		resp, err = client.Get(answer.URL())
	}
	if err != nil {
		t.Fatalf("the provider's answer to the callback: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

func expectEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}
