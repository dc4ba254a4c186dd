package tokenbroker

// Roles (path_role.go): a named, fixed narrowing of a config's tokens, read
// at role/<role>/creds and cached with the narrowed reads; an RFC 8693
// exchange against the fake and zitadel.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// TestRoleWrites: a role is checked against its config when written, and
// reads back as written (canonical).
func TestRoleWrites(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "a,b", "allowed_audiences": "api"})
	e.config("echo", fakeprovider.Echo360, map[string]any{"allowed_audiences": "api"})
	cases := []struct {
		name    string
		write   map[string]any
		wantErr string
		want    map[string]any // fields read back, compared as printed
	}{
		{"scopes canonical", map[string]any{"config": "x", "scope": "b a b"}, "", map[string]any{"scope": "[a b]", "exchange": "false"}},
		{"an exchange", map[string]any{"config": "x", "exchange": true, "audience": "api", "requested_token_type": "jwt"}, "",
			map[string]any{"audience": "[api]", "exchange": "true", "subject_token_type": "access_token", "requested_token_type": "jwt"}},
		{"no config", map[string]any{"scope": "a"}, "give one of config or app", nil},
		{"both config and app", map[string]any{"config": "x", "app": "mail"}, "give one of config or app", nil},
		{"an unknown app", map[string]any{"app": "nope"}, `no app named "nope"`, nil},
		{"an unknown config", map[string]any{"config": "nope"}, `no config named "nope"`, nil},
		{"a scope outside", map[string]any{"config": "x", "scope": "c"}, `scope "c" is not among the allowed scopes`, nil},
		{"a bad resource", map[string]any{"config": "x", "resource": "nope"}, "must be an absolute URI", nil},
		{"an exchange the provider does not offer", map[string]any{"config": "echo", "exchange": true, "audience": "api"}, "does not offer token exchange", nil},
		{"an ID token subject", map[string]any{"config": "x", "exchange": true, "subject_token_type": "id_token", "audience": "api"}, "",
			map[string]any{"exchange": "true", "subject_token_type": "id_token"}},
		{"another subject token type", map[string]any{"config": "x", "exchange": true, "subject_token_type": "refresh_token"}, `subject_token_type "refresh_token"`, nil},
		{"exchange fields without exchange", map[string]any{"config": "x", "requested_token_type": "jwt"}, "need exchange=true", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.do(logical.UpdateOperation, "role/r", tc.write)
			if tc.wantErr != "" {
				expectErr(t, "role write", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("role write %v: %v", tc.write, err)
			}
			got := e.mustDo(logical.ReadOperation, "role/r", nil).Data
			for k, want := range tc.want {
				if printed := fmt.Sprint(got[k]); printed != want {
					t.Errorf("%s: got %s, want %s", k, printed, want)
				}
			}
			e.mustDo(logical.DeleteOperation, "role/r", nil)
		})
	}
	e.mustDo(logical.UpdateOperation, "role/r1", map[string]any{"config": "x", "scope": "a"})
	e.mustDo(logical.UpdateOperation, "role/r2", map[string]any{"config": "x"})
	if got := e.mustDo(logical.ListOperation, "role/", nil).Data["keys"]; !slices.Equal(got.([]string), []string{"r1", "r2"}) {
		t.Errorf("role list: got %v, want [r1 r2]", got)
	}
}

// TestRoleCreds: role/<role>/creds is its config's token narrowed as the
// role says, shared with a narrowed read of the same narrowing; a role
// without narrowing serves the config's own token; a deleted role is a 404.
func TestRoleCreds(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"scopes": "reports:read,reports:write", "allowed_scopes": "reports:read"})
	e.mustDo(logical.CreateOperation, "role/reporting", map[string]any{"config": "x", "scope": "reports:read"})
	e.mustDo(logical.CreateOperation, "role/all", map[string]any{"config": "x"})
	main := e.token("x")
	resp := e.mustDo(logical.ReadOperation, "role/reporting/creds", nil)
	tok, _ := resp.Data["access_token"].(string)
	if tok == "" || tok == main {
		t.Fatalf("role token: got %q, want a narrowed token", tok)
	}
	if got, _ := resp.Data["scopes"].([]string); !slices.Equal(got, []string{"reports:read"}) {
		t.Errorf("scopes: got %v, want [reports:read]", got)
	}
	calls := e.fake.TotalCalls()
	expect(t, "narrowed read of the role's narrowing", e.narrowedToken("x", map[string]any{"scope": "reports:read"}), tok)
	expect(t, "role read again", e.mustDo(logical.ReadOperation, "role/reporting/creds", nil).Data["access_token"].(string), tok)
	expect(t, "upstream calls", e.fake.TotalCalls()-calls, 0)
	expect(t, "role without narrowing", e.mustDo(logical.ReadOperation, "role/all/creds", nil).Data["access_token"].(string), main)

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"allowed_scopes": "reports:write"})
	_, err := e.do(logical.ReadOperation, "role/reporting/creds", nil)
	expectErr(t, "a role its config no longer allows", err, `scope "reports:read" is not among the allowed scopes`)
	expect(t, "status", codeOf(err), http.StatusBadRequest)

	e.mustDo(logical.DeleteOperation, "role/reporting", nil)
	_, err = e.do(logical.ReadOperation, "role/reporting/creds", nil)
	expect(t, "status of a deleted role", codeOf(err), http.StatusNotFound)
}

// TestRoleTokenExchange: a role with an exchange presents the config's
// access token as the subject (RFC 8693 §2.1) and serves what the
// provider issues for the audience, cached: one exchange for many reads.
// An audience the provider refuses (invalid_target, §2.2.2) is a 400.
func TestRoleTokenExchange(t *testing.T) {
	e := newEnv(t)
	e.fake.SetTokenExchange(fakeprovider.TokenExchangeAnyClient)
	e.fake.SetClientPolicy(testClientID, fakeprovider.ClientPolicy{Audiences: []string{"orders"}})
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_audiences": "orders,billing"})
	e.mustDo(logical.CreateOperation, "role/orders", map[string]any{"config": "x", "exchange": true, "audience": "orders"})
	e.mustDo(logical.CreateOperation, "role/billing", map[string]any{"config": "x", "exchange": true, "audience": "billing"})
	main := e.token("x")
	tok := e.mustDo(logical.ReadOperation, "role/orders/creds", nil).Data["access_token"].(string)
	if tok == main || !slices.Equal(e.fake.Audiences(tok), []string{"orders"}) {
		t.Fatalf("exchanged token: the main one %v, audiences %v; want a new token for [orders]", tok == main, e.fake.Audiences(tok))
	}
	expect(t, "subject_token sent", e.fake.LastRequest(fakeprovider.PathOAuth2Token).Params["subject_token"], main)
	calls := e.fake.TotalCalls()
	expect(t, "exchanged token read again", e.mustDo(logical.ReadOperation, "role/orders/creds", nil).Data["access_token"].(string), tok)
	expect(t, "upstream calls", e.fake.TotalCalls()-calls, 0)
	_, err := e.do(logical.ReadOperation, "role/billing/creds", nil)
	expectErr(t, "an audience the provider refuses", err, "invalid_target")
	expect(t, "status", codeOf(err), http.StatusBadRequest)

	e.mustDo(logical.CreateOperation, "role/by-id-token", map[string]any{"config": "x", "exchange": true, "audience": "orders", "subject_token_type": "id_token"})
	calls = e.fake.TotalCalls()
	_, err = e.do(logical.ReadOperation, "role/by-id-token/creds", nil)
	expectErr(t, "an ID token exchange of a chain without one", err, `config "x" holds no ID token`)
	expect(t, "status", codeOf(err), http.StatusBadRequest)
	expect(t, "upstream calls", e.fake.TotalCalls()-calls, 0)
}

// TestZitadelIDTokenExchange: a user connected at zitadel's OpenID
// provider has the ID token zitadel issued kept with the chain (never
// shown); a role presents it as the subject token (RFC 8693,
// subject_token_type id_token), which zitadel verifies, and serves the
// token issued for the user and the role's audience. A refresh that brings
// a new ID token replaces the kept one.
func TestZitadelIDTokenExchange(t *testing.T) {
	o, e := startZitadelEnv(t)
	connectAtZitadel(t, o, e, "z", map[string]any{"allowed_audiences": "api-a"})
	o.EnableTokenExchange("api-a")
	idToken := e.storedState("z").IDToken
	if exp, ok := provider.IDTokenExpiry(idToken); !ok || exp.Before(time.Now()) {
		t.Fatalf("kept ID token: exp %v (a JWT: %v); want zitadel's, unexpired", exp, ok)
	}
	main := e.mustDo(logical.ReadOperation, "creds/z", nil)
	for k, v := range main.Data {
		if s, _ := v.(string); strings.Contains(s, idToken) {
			t.Errorf("creds/z shows the ID token in %q", k)
		}
	}

	e.mustDo(logical.CreateOperation, "role/a", map[string]any{"config": "z", "exchange": true, "audience": "api-a", "subject_token_type": "id_token"})
	tok := e.mustDo(logical.ReadOperation, "role/a/creds", nil).Data["access_token"].(string)
	if subject, ok := o.Subject(tok); !ok || subject != "id1" || !slices.Contains(o.Audiences(tok), "api-a") || tok == main.Data["access_token"] {
		t.Fatalf("exchanged token: issued %v to %q for %v; want a new token of the user id1 for api-a", ok, subject, o.Audiences(tok))
	}
	if got := o.ExchangeSubjectTypes(); !slices.Equal(got, []string{provider.TokenTypeIDToken}) {
		t.Errorf("subject token types zitadel saw: got %v, want [%s]", got, provider.TokenTypeIDToken)
	}

	if _, err := e.creds("z", map[string]any{"scope": "profile"}); err != nil { // a refresh: zitadel issues an ID token with it
		t.Fatalf("narrowed read: %v", err)
	}
	if renewed := e.storedState("z").IDToken; renewed == idToken || renewed == "" {
		t.Errorf("the ID token after a refresh that brought one: unchanged %v, empty %v; want the new one", renewed == idToken, renewed == "")
	}
}

// TestZitadelRoleTokenExchange: zitadel's op.TokenExchange exchanges the
// config's client credentials token for the role's audience.
func TestZitadelRoleTokenExchange(t *testing.T) {
	o, e := startZitadelEnv(t)
	key := e.configSigned("z", "oauth2", map[string]any{"token_url": o.TokenURL, "client_id": "svc-z", "assertion_audience": o.Issuer,
		"generate_key": "ec-p256", "scopes": "openid", "allowed_audiences": "api-a"})
	o.AddClient("svc-z", publicJWK(t, key, ""))
	o.EnableTokenExchange("api-a")
	e.mustDo(logical.CreateOperation, "role/a", map[string]any{"config": "z", "exchange": true, "audience": "api-a"})
	tok := e.mustDo(logical.ReadOperation, "role/a/creds", nil).Data["access_token"].(string)
	if got := o.Audiences(tok); !slices.Contains(got, "api-a") {
		t.Fatalf("exchanged token's audiences: got %v, want api-a among them", got)
	}
}

// TestRoleOfAnApp: a role of an app serves each caller their own
// connection's token, narrowed within the app's bounds; a caller without a
// connection gets self/'s 404.
func TestRoleOfAnApp(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", map[string]any{"scopes": "read,write", "allowed_scopes": "read"})
	e.mustDo(logical.CreateOperation, "role/mail-read", map[string]any{"app": "mail", "scope": "read"})
	e.connectSelf(entityA, "mail", accountA, emailA)
	own, err := e.as(entityA, logical.ReadOperation, "self/mail", map[string]any{"scope": "read"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.as(entityA, logical.ReadOperation, "role/mail-read/creds", nil)
	if err != nil {
		t.Fatalf("role of an app, read by a connected user: %v", err)
	}
	expect(t, "role token (the user's narrowed token)", resp.Data["access_token"], own.Data["access_token"])
	_, err = e.as(entityB, logical.ReadOperation, "role/mail-read/creds", nil)
	expect(t, "status for a user without a connection", codeOf(err), http.StatusNotFound)
	expectErr(t, "role write beyond the app's bounds", func() error {
		_, err := e.do(logical.CreateOperation, "role/mail-write", map[string]any{"app": "mail", "scope": "write"})
		return err
	}(), `scope "write" is not among the allowed scopes`)
}
