//go:build e2e

package e2e

// Vault users connect their own accounts (self/<app>/...): two userpass
// users of one real Vault, each with an entity and only the policy
// `path "tokenbroker/self/*"`, connect the real OpenID provider's accounts
// alice and bob in headless Chromium. Each reads only their own token (the
// OP's introspection names the right subject); nothing a user holds reaches
// the other's; identity_match=email refuses another person's account; a
// disconnect revokes the refresh token at the OP (RFC 7009); and a templated
// policy on creds/<app>.{{identity.entity.id}} serves an operator's service.

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Vault users: userpass logins, each making an entity.
const (
	vaultAlicePassword = "vault-alice-pw-91c2"
	vaultBobPassword   = "vault-bob-pw-5e07"
)

// selfPolicy is the one policy a user needs for their own connections.
const selfPolicy = `path "tokenbroker/self/*" { capabilities = ["read", "update", "delete"] }` + "\n"

// vaultUser is a Vault user logged in through userpass.
type vaultUser struct {
	name, token, entity string
	opUser, opPassword  string // their own account at the OP
	email               string // that account's email
}

// answer is one raw HTTP request to Vault.
type answer struct {
	Code int
	Body string
}

func (a answer) String() string { return http.StatusText(a.Code) + " " + strings.TrimSpace(a.Body) }

// vaultHTTP sends method (GET, LIST, DELETE...) to Vault's /v1/path with
// token, for the status codes and messages the CLI hides (it turns a 404
// into "No value found").
func vaultHTTP(v *Vault, token, method, path string) answer {
	v.t.Helper()
	req, err := http.NewRequest(method, v.Addr+"/v1/"+path, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: cliTimeout}).Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{Code: resp.StatusCode, Body: string(body)}
}

// expectHTTP fails unless method path as token answers code with a body
// holding want.
func expectHTTP(t *testing.T, v *Vault, who, token, method, path string, code int, want string) {
	t.Helper()
	if a := vaultHTTP(v, token, method, path); a.Code != code || !strings.Contains(a.Body, want) {
		t.Errorf("%s %s as %s: %d %s, want %d with %q", method, path, who, a.Code, strings.TrimSpace(a.Body), code, want)
	}
}

// expectData fails unless data[key] is want.
func expectData(t *testing.T, what string, data map[string]any, key string, want any) {
	t.Helper()
	if got := data[key]; got != want {
		t.Errorf("%s: %s = %v, want %v", what, key, got, want)
	}
}

func TestSelfConnections(t *testing.T) {
	started := time.Now()
	v := StartVaultWithPlugin(t)
	callback := v.Addr + "/v1/" + mountPath + "/callback"
	op := StartOP(t, callback)
	browser := StartBrowser(t)
	t.Logf("Vault, the OP and Chromium up in %s", time.Since(started).Round(time.Millisecond))

	// Two apps of the OP's web client: crm takes any account, crm-matched
	// only the Vault user's own (identity_match=email).
	const app, matched = "crm", "crm-matched"
	appArgs := []string{"provider=oauth2", "issuer=" + op.Issuer, "client_id=" + opWebClient, "client_secret=" + opClientSecret,
		"redirect_uri=" + callback, "scopes=openid,email,profile,offline_access"}
	v.Must(append([]string{"write", mountPath + "/app/" + app}, appArgs...)...)
	v.Must(append([]string{"write", mountPath + "/app/" + matched, "identity_match=email"}, appArgs...)...)
	discovered := vaultData(v, "read", mountPath+"/app/"+app)
	var md map[string]any
	if err := json.Unmarshal([]byte(getBody(t, op.Issuer+".well-known/openid-configuration")), &md); err != nil {
		t.Fatalf("the OP's metadata: %v", err)
	}
	for field, key := range map[string]string{"token_url": "token_endpoint", "auth_url": "authorization_endpoint",
		"device_authorization_url": "device_authorization_endpoint", "revocation_url": "revocation_endpoint", "userinfo_url": "userinfo_endpoint"} {
		if discovered[field] != md[key] || md[key] == nil {
			t.Errorf("app/%s: discovery filled %s = %v, want the OP's %s %v", app, field, discovered[field], key, md[key])
		}
	}
	expectData(t, "app/"+matched, vaultData(v, "read", mountPath+"/app/"+matched), "identity_match", "email")

	// The Vault users: userpass, the self policy only, an entity each.
	v.Must("auth", "enable", "userpass")
	v.Must("policy", "write", "tokenbroker-self", v.WriteFile("self.hcl", selfPolicy))
	login := func(name, password string) (token, entity string) {
		t.Helper()
		v.Must("write", "auth/userpass/users/"+name, "password="+password,
			"token_policies=tokenbroker-self", "token_no_default_policy=true", "token_ttl=30m")
		auth, _ := v.JSON("write", "-format=json", "auth/userpass/login/"+name, "password="+password)["auth"].(map[string]any)
		token, _ = auth["client_token"].(string)
		entity, _ = auth["entity_id"].(string)
		if token == "" || entity == "" || !slices.Equal(anyStrings(auth["policies"]), []string{"tokenbroker-self"}) {
			t.Fatalf("login as %s: auth = %v, want a token with an entity and the policy tokenbroker-self only", name, auth)
		}
		return token, entity
	}
	alice := vaultUser{name: "alice", opUser: opUser, opPassword: opPassword, email: opUserEmail}
	bob := vaultUser{name: "bob", opUser: opBob, opPassword: opBobPassword, email: opBobEmail}
	alice.token, alice.entity = login(alice.name, vaultAlicePassword)
	bob.token, bob.entity = login(bob.name, vaultBobPassword)
	// Vault knows alice's email (entity metadata); bob's entity has none.
	v.Must("write", "identity/entity/id/"+alice.entity, "metadata=email="+alice.email)
	conn := func(u vaultUser, app string) string { return app + "." + u.entity }

	step := sharedSteps(t, v, op, browser)

	// connect runs u's browser journey for app, approved at the OP by the
	// account of approver, and returns the callback page's status and text.
	connect := func(t *testing.T, u vaultUser, app string, approver vaultUser) (status int, title, message string) {
		t.Helper()
		r := v.RunAs(u.token, "write", "-format=json", "-force", mountPath+"/self/"+app+"/authorize")
		if r.Code != 0 {
			t.Fatalf("self/%s/authorize as %s: %s", app, u.name, r)
		}
		var out struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatal(err)
		}
		authURL, _ := out.Data["url"].(string)
		if !strings.HasPrefix(authURL, op.Issuer+"auth?") || out.Data["state"] == "" || out.Data["connection"] != conn(u, app) {
			t.Fatalf("self/%s/authorize as %s = url %s, state set %v, connection %v; want the OP's auth URL, a state, connection %s",
				app, u.name, redactQuery(authURL), out.Data["state"] != "", out.Data["connection"], conn(u, app))
		}
		landed, title, message, status := browser.SignInAs(authURL, approver.opUser, approver.opPassword)
		if !strings.HasPrefix(landed, callback+"?") {
			t.Fatalf("after %s signed in: landed on %s, want Vault's callback", approver.name, redactQuery(landed))
		}
		return status, title, message
	}
	// selfToken is u's own token of app, as the CLI gives it.
	selfToken := func(t *testing.T, u vaultUser, app string) string {
		t.Helper()
		r := v.RunAs(u.token, "read", "-format=json", mountPath+"/self/"+app)
		if r.Code != 0 {
			t.Fatalf("self/%s as %s: %s", app, u.name, r)
		}
		return decodeCreds(t, r.Stdout).AccessToken
	}
	selfStatus := func(t *testing.T, u vaultUser, app string) map[string]any {
		t.Helper()
		r := v.RunAs(u.token, "read", "-format=json", mountPath+"/self/"+app+"/status")
		var out struct {
			Data map[string]any `json:"data"`
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
			t.Fatalf("self/%s/status as %s: %s", app, u.name, r)
		}
		return out.Data
	}
	// connections is LIST app/<app>/connections as root: names and key_info.
	connections := func(t *testing.T, app string) ([]string, map[string]map[string]any) {
		t.Helper()
		a := vaultHTTP(v, v.Token, "LIST", mountPath+"/app/"+app+"/connections")
		if a.Code == http.StatusNotFound { // Vault's answer to an empty list
			return nil, nil
		}
		var out struct {
			Data struct {
				Keys    []string                  `json:"keys"`
				KeyInfo map[string]map[string]any `json:"key_info"`
			} `json:"data"`
		}
		if a.Code != 200 || json.Unmarshal([]byte(a.Body), &out) != nil {
			t.Fatalf("LIST app/%s/connections: %s", app, a)
		}
		return out.Data.Keys, out.Data.KeyInfo
	}

	var aliceToken, bobToken string
	step("each user connects their own account and reads only their own token", func(t *testing.T) {
		for _, u := range []vaultUser{alice, bob} {
			status, title, message := connect(t, u, app, u)
			want := conn(u, app) + " connected to the account " + u.email + "; you can close this window."
			if status != 200 || title != conn(u, app)+" connected" || message != want {
				t.Fatalf("callback for %s: %d %q / %q, want 200 %q", u.name, status, title, message, want)
			}
		}
		aliceToken, bobToken = selfToken(t, alice, app), selfToken(t, bob, app)
		if aliceToken == bobToken {
			t.Fatal("alice and bob read the same token")
		}
		for _, c := range []struct {
			u     vaultUser
			token string
		}{{alice, aliceToken}, {bob, bobToken}} {
			if got := op.Introspect(opWebClient, c.token); !got.Active || got.Subject != c.u.opUser || got.Email != c.u.email {
				t.Errorf("the OP's introspection of %s's self/%s token: %+v, want active, subject %s, email %s", c.u.name, app, got, c.u.opUser, c.u.email)
			}
			status := selfStatus(t, c.u, app)
			what := c.u.name + "'s self/" + app + "/status"
			expectData(t, what, status, "owner", c.u.entity)
			expectData(t, what, status, "account_subject", c.u.opUser)
			expectData(t, what, status, "account_email", c.u.email)
			expectData(t, what, status, "app", app)
			expectData(t, what, status, "connection", conn(c.u, app))
			// The operator reaches the same connection by its name.
			if got := v.ReadCreds(conn(c.u, app)).AccessToken; got != c.token {
				t.Errorf("creds/%s as root: another token than %s's self/%s", conn(c.u, app), c.u.name, app)
			}
		}
		names, info := connections(t, app)
		if want := []string{conn(alice, app), conn(bob, app)}; !slices.Equal(names, sortedCopy(want)) {
			t.Fatalf("LIST app/%s/connections = %v, want %v", app, names, sortedCopy(want))
		}
		for _, u := range []vaultUser{alice, bob} {
			expectData(t, "key_info of "+conn(u, app), info[conn(u, app)], "owner", u.entity)
			expectData(t, "key_info of "+conn(u, app), info[conn(u, app)], "account_email", u.email)
			expectData(t, "key_info of "+conn(u, app), info[conn(u, app)], "account_subject", u.opUser)
		}
	})

	step("no path a user holds reaches the other's connection", func(t *testing.T) {
		for _, c := range []struct{ u, other vaultUser }{{alice, bob}, {bob, alice}} {
			who := c.u.name
			// The ordinary paths are the operators': the policy denies them.
			for _, p := range []struct{ method, path string }{
				{"GET", mountPath + "/creds/" + conn(c.other, app)},
				{"GET", mountPath + "/status/" + conn(c.other, app)},
				{"GET", mountPath + "/config/" + conn(c.other, app)},
				{"DELETE", mountPath + "/config/" + conn(c.other, app)},
				{"LIST", mountPath + "/app/" + app + "/connections"},
			} {
				expectHTTP(t, v, who, c.u.token, p.method, p.path, http.StatusForbidden, "permission denied")
			}
			// Under self/ every name is the caller's own: the other's full
			// connection name as an app is an app the caller has no connection of.
			for _, p := range []struct{ method, path string }{
				{"GET", mountPath + "/self/" + conn(c.other, app)},
				{"GET", mountPath + "/self/" + conn(c.other, app) + "/status"},
				{"DELETE", mountPath + "/self/" + conn(c.other, app)},
			} {
				expectHTTP(t, v, who, c.u.token, p.method, p.path, http.StatusNotFound, "you have no connection of app")
			}
		}
		// Nothing changed: each still reads their own, active token.
		if got := selfToken(t, alice, app); got != aliceToken || op.Introspect(opWebClient, got).Subject != opUser {
			t.Error("alice's token changed or is not alice's after bob's attempts")
		}
		if got := selfToken(t, bob, app); got != bobToken || op.Introspect(opWebClient, got).Subject != opBob {
			t.Error("bob's token changed or is not bob's after alice's attempts")
		}
	})

	step("a token without an entity owns nothing under self/", func(t *testing.T) {
		created, _ := v.JSON("token", "create", "-format=json", "-policy=tokenbroker-self", "-ttl=10m")["auth"].(map[string]any)
		noEntity, _ := created["client_token"].(string)
		for _, who := range []struct{ name, token string }{{"root", v.Token}, {"a token made by root with the self policy", noEntity}} {
			for _, p := range []struct{ method, path string }{
				{"GET", mountPath + "/self/" + app},
				{"GET", mountPath + "/self/" + app + "/status"},
				{"DELETE", mountPath + "/self/" + app},
				{"POST", mountPath + "/self/" + app + "/authorize"},
			} {
				expectHTTP(t, v, who.name, who.token, p.method, p.path, http.StatusBadRequest, "this token has no entity")
			}
		}
		if names, _ := connections(t, app); len(names) != 2 {
			t.Errorf("connections after the entity-less requests: %v, want alice's and bob's", names)
		}
	})

	step("a templated policy lets a user's service read only that user's creds", func(t *testing.T) {
		own, others := mountPath+"/creds/"+conn(alice, app), mountPath+"/creds/"+conn(bob, app)
		expectHTTP(t, v, "alice before the policy", alice.token, "GET", own, http.StatusForbidden, "permission denied")
		v.Must("policy", "write", "crm-own", v.WriteFile("crm-own.hcl",
			`path "tokenbroker/creds/`+app+`.{{identity.entity.id}}" { capabilities = ["read"] }`+"\n"))
		v.Must("write", "identity/entity/id/"+alice.entity, "policies=crm-own")
		r := v.RunAs(alice.token, "read", "-format=json", own)
		if r.Code != 0 {
			t.Fatalf("alice reading her own creds/ under the templated policy: %s", r)
		}
		if got := decodeCreds(t, r.Stdout).AccessToken; got != aliceToken {
			t.Errorf("creds/%s as alice: not the token of her self/%s", conn(alice, app), app)
		}
		expectHTTP(t, v, "alice with the templated policy", alice.token, "GET", others, http.StatusForbidden, "permission denied")
		expectHTTP(t, v, "bob", bob.token, "GET", own, http.StatusForbidden, "permission denied")
		// The entity update kept alice's email (the next step needs it).
		ent := vaultData(v, "read", "identity/entity/id/"+alice.entity)
		if md, _ := ent["metadata"].(map[string]any); md["email"] != alice.email {
			t.Fatalf("alice's entity metadata after adding the policy: %v, want email %s", ent["metadata"], alice.email)
		}
	})

	step("identity_match=email refuses another person's account and stores nothing", func(t *testing.T) {
		before := len(op.Revocations())
		status, title, message := connect(t, alice, matched, bob)
		if status != http.StatusForbidden || title != "Authorization of "+conn(alice, matched)+" failed" ||
			!strings.Contains(message, "("+bob.email+") is not the Vault user's") || !strings.HasSuffix(message, "; nothing was stored") {
			t.Fatalf("alice's link approved by bob under identity_match=email: %d %q / %q, want 403 naming %s, not the Vault user's, nothing was stored",
				status, title, message, bob.email)
		}
		expectHTTP(t, v, "root", v.Token, "GET", mountPath+"/config/"+conn(alice, matched), http.StatusNotFound, "")
		if names, _ := connections(t, matched); len(names) != 0 {
			t.Fatalf("LIST app/%s/connections after the refusal = %v, want none", matched, names)
		}
		expectHTTP(t, v, "alice", alice.token, "GET", mountPath+"/self/"+matched, http.StatusNotFound, "you have no connection of app")
		if got := op.Revocations()[before:]; len(got) != 1 || got[0] != (Revocation{Subject: opBob, Client: opWebClient, Refresh: true}) {
			t.Errorf("the OP's revocations after the refusal: %+v, want bob's refresh token (of %s) revoked", got, opWebClient)
		}

		// alice's own account matches the email Vault knows for her.
		status, title, message = connect(t, alice, matched, alice)
		if status != 200 || message != conn(alice, matched)+" connected to the account "+alice.email+"; you can close this window." {
			t.Fatalf("alice's own account under identity_match=email: %d %q / %q, want 200 connected to %s", status, title, message, alice.email)
		}
		own := selfToken(t, alice, matched)
		if got := op.Introspect(opWebClient, own); !got.Active || got.Subject != opUser {
			t.Fatalf("the OP's introspection of alice's self/%s token: %+v, want active, subject %s", matched, got, opUser)
		}

		// Approved by bob again, a reconnect is refused and keeps alice's connection.
		before = len(op.Revocations())
		if status, _, message = connect(t, alice, matched, bob); status != http.StatusForbidden || !strings.Contains(message, "nothing was stored") {
			t.Fatalf("alice's reconnect approved by bob: %d %q, want 403, nothing was stored", status, message)
		}
		if got := selfToken(t, alice, matched); got != own || !op.Active(opWebClient, own) {
			t.Error("a refused reconnect changed alice's connection or ended its token")
		}
		if st := selfStatus(t, alice, matched); st["account_email"] != alice.email {
			t.Errorf("self/%s/status after the refused reconnect: account_email %v, want %s", matched, st["account_email"], alice.email)
		}
		if got := op.Revocations()[before:]; len(got) != 1 || got[0].Subject != opBob {
			t.Errorf("the OP's revocations after the refused reconnect: %+v, want bob's", got)
		}

		// Vault knows no email for bob: even his own account is refused.
		if status, _, message = connect(t, bob, matched, bob); status != http.StatusForbidden || !strings.Contains(message, "is not the Vault user's") {
			t.Fatalf("bob (no email in Vault) under identity_match=email: %d %q, want 403", status, message)
		}
		if names, _ := connections(t, matched); !slices.Equal(names, []string{conn(alice, matched)}) {
			t.Errorf("LIST app/%s/connections = %v, want alice's only", matched, names)
		}
	})

	step("without identity_match the connection is the starter's, whoever approves", func(t *testing.T) {
		status, title, message := connect(t, alice, app, bob)
		if status != 200 || message != conn(alice, app)+" connected to the account "+bob.email+"; you can close this window." {
			t.Fatalf("alice's link approved by bob without identity_match: %d %q / %q, want 200 naming %s", status, title, message, bob.email)
		}
		st := selfStatus(t, alice, app)
		expectData(t, "alice's self/"+app+"/status", st, "owner", alice.entity)
		expectData(t, "alice's self/"+app+"/status", st, "account_email", bob.email)
		expectData(t, "alice's self/"+app+"/status", st, "account_subject", opBob)
		aliceToken = selfToken(t, alice, app)
		if got := op.Introspect(opWebClient, aliceToken); !got.Active || got.Subject != opBob {
			t.Errorf("the OP's introspection of alice's reconnected token: %+v, want active, subject %s", got, opBob)
		}
		// bob's own connection is untouched.
		if got := selfToken(t, bob, app); got != bobToken {
			t.Error("alice's reconnect changed bob's connection")
		}
	})

	step("alice disconnects: the refresh token is revoked at the OP, the connection deleted", func(t *testing.T) {
		// Rotate the chain first (an operator evicts the cached token; the
		// next read refreshes), so the disconnect must revoke the current
		// refresh token, not the first one.
		v.Must("delete", mountPath+"/creds/"+conn(alice, app))
		if rotated := selfToken(t, alice, app); rotated == aliceToken {
			t.Fatal("alice's token did not rotate after the eviction")
		} else {
			aliceToken = rotated
		}
		if g := vaultData(v, "read", mountPath+"/status/"+conn(alice, app))["last_grant"]; g != "refresh_token" {
			t.Fatalf("last_grant = %v after the rotation, want refresh_token", g)
		}
		if !op.Active(opWebClient, aliceToken) {
			t.Fatal("alice's access token is inactive before the disconnect")
		}
		before := len(op.Revocations())
		r := v.RunAs(alice.token, "delete", "-format=json", mountPath+"/self/"+app)
		if r.Code != 0 || !strings.Contains(r.Stdout, `"revoked": true`) {
			t.Fatalf("vault delete self/%s as alice: %s, want revoked=true", app, r)
		}
		if got := op.Revocations()[before:]; len(got) != 1 || got[0] != (Revocation{Subject: opBob, Client: opWebClient, Refresh: true}) {
			t.Errorf("the OP's revocations after the disconnect: %+v, want the refresh token of the connected account (%s)", got, opBob)
		}
		// The example OP ends a revoked refresh token's access token too.
		if got := op.Introspect(opWebClient, aliceToken); got.Active {
			t.Errorf("the OP's introspection of alice's access token after the disconnect: %+v, want inactive", got)
		}
		expectHTTP(t, v, "root", v.Token, "GET", mountPath+"/status/"+conn(alice, app), http.StatusNotFound, "")
		expectHTTP(t, v, "alice", alice.token, "GET", mountPath+"/self/"+app, http.StatusNotFound, "you have no connection of app")
		expectHTTP(t, v, "alice", alice.token, "DELETE", mountPath+"/self/"+app, http.StatusNotFound, "you have no connection of app")
		if names, _ := connections(t, app); !slices.Equal(names, []string{conn(bob, app)}) {
			t.Errorf("LIST app/%s/connections after alice's disconnect = %v, want bob's only", app, names)
		}
		if got := selfToken(t, bob, app); got != bobToken || !op.Active(opWebClient, got) {
			t.Error("alice's disconnect changed or ended bob's connection")
		}
	})
	t.Logf("TestSelfConnections took %s", time.Since(started).Round(time.Millisecond))
}

// getBody GETs an absolute loopback URL and returns its body.
func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: cliTimeout}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return string(body)
}

// anyStrings is a JSON array of strings as []string.
func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, s := range list {
		str, _ := s.(string)
		out = append(out, str)
	}
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
