package tokenbroker

// config/<name> reads: what a read shows for each kind of config, and that
// every field written reads back (secrets as *_set).

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// cliLines is how many lines `vault read` prints for data: a header, a rule
// and one line per key.
func cliLines(data map[string]any) int { return len(data) + 2 }

// TestConfigReadShowsWhatApplies: a read shows the fields of the config's
// dialect and grant; fields of flows it cannot use, and empty optional
// fields, are left out; the *_set facts of secrets always show; no secret does.
func TestConfigReadShowsWhatApplies(t *testing.T) {
	e := newEnv(t)
	base := e.fake.URL()
	// Every config read shows these.
	always := []string{"provider", "token_url", "auth_style", "encoding", "refresh_ahead", "default_ttl", "timeout",
		"refresh_grant", "refresh_reuse_grace", "revokes_previous_token", "client_secret_set", "client_secrets_count",
		"api_key_set", "refresh_token_set", "needs_refresh_token", "schema_version", "private_key_set"}
	userFlow := []string{"auth_url", "device_authorization_url", "redirect_uri", "pkce", "auth_params", "response_mode", "issuer"}
	signing := []string{"grant", "key_id", "key_type", "key_generated", "certificate_set", "next_key_id", "signing_alg",
		"assertion_ttl", "assertion_issuer", "assertion_subject", "assertion_audience", "assertion_claims",
		"app_id", "installation_id", "installation_owner", "api_url", "repositories", "repository_ids", "permissions"}
	cases := []struct {
		name   string
		write  map[string]any
		exact  []string // when set: exactly these keys besides always
		has    []string
		hasNot []string
	}{
		{name: "echo360 client credentials",
			write: map[string]any{"provider": "echo360", "token_url": base + fakeprovider.Echo360.TokenPath(), "ca_pem": e.fake.CAPEM(),
				"client_id": testClientID, "client_secret": testClientSecret},
			exact: []string{"client_id", "ca_pem"}},
		{name: "google user authorization",
			write: map[string]any{"provider": "google", "client_id": testClientID, "client_secret": testClientSecret,
				"redirect_uri": testRedirect, "scopes": "openid"},
			has:    []string{"auth_url", "redirect_uri", "pkce", "response_mode", "scopes", "client_id"},
			hasNot: append([]string{"tenant", "refresh_url", "issuer", "auth_params", "audience", "extra_params"}, signing...)},
		{name: "github_app signing",
			write: map[string]any{"provider": "github_app", "ca_pem": e.fake.CAPEM(), "api_url": base + fakeprovider.PathGitHubAPI,
				"app_id": "1234", "installation_id": "42", "private_key": pkcs1PEM(testRSA)},
			has: []string{"grant", "key_id", "key_type", "key_generated", "certificate_set", "signing_alg", "assertion_ttl",
				"assertion_issuer", "assertion_audience", "app_id", "installation_id", "api_url"},
			hasNot: append([]string{"tenant", "refresh_url", "client_id", "scopes", "next_key_id", "installation_owner",
				"repositories", "repository_ids", "permissions", "assertion_claims"}, userFlow...)},
		{name: "oauth2 with an issuer",
			write: map[string]any{"issuer": base, "ca_pem": e.fake.CAPEM(), "client_id": testClientID, "client_secret": testClientSecret,
				"redirect_uri": testRedirect},
			has:    []string{"issuer", "auth_url", "device_authorization_url", "redirect_uri", "pkce", "response_mode", "revocation_url", "userinfo_url"},
			hasNot: append([]string{"tenant", "refresh_url", "auth_params", "scopes"}, signing...)},
		{name: "microsoft default tenant",
			write: map[string]any{"provider": "microsoft", "client_id": testClientID, "client_secret": testClientSecret,
				"scopes": "https://graph.microsoft.com/.default"},
			has: []string{"tenant", "auth_url"}, hasNot: []string{"refresh_url", "redirect_uri", "issuer"}},
		{name: "apivideo refresh URL",
			write: map[string]any{"provider": "apivideo", "token_url": base + fakeprovider.APIVideo.TokenPath(), "ca_pem": e.fake.CAPEM(),
				"api_key": testAPIKey},
			exact: []string{"refresh_url", "ca_pem"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("c%d", i)
			e.mustDo(logical.CreateOperation, "config/"+name, c.write)
			data := e.mustDo(logical.ReadOperation, "config/"+name, nil).Data
			t.Logf("vault read prints %d lines: %v", cliLines(data), slices.Sorted(maps.Keys(data)))
			raw, _ := json.Marshal(data)
			for _, secret := range []string{testClientSecret, testAPIKey, "PRIVATE KEY"} {
				if strings.Contains(string(raw), secret) {
					t.Fatalf("the read shows a secret (%.12s…): %s", secret, raw)
				}
			}
			for _, k := range always {
				if _, ok := data[k]; !ok {
					t.Errorf("%s missing", k)
				}
			}
			if c.exact != nil {
				want := slices.Sorted(slices.Values(append(slices.Clone(always), c.exact...)))
				if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, want) {
					t.Errorf("keys %v\nwant %v", got, want)
				}
			}
			for _, k := range c.has {
				if _, ok := data[k]; !ok {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range c.hasNot {
				if v, ok := data[k]; ok {
					t.Errorf("%s = %v shown; it does not apply here", k, v)
				}
			}
		})
	}
	microsoft := e.mustDo(logical.ReadOperation, "config/c4", nil).Data
	expectField(t, microsoft, "tenant", "common")
	apivideo := e.mustDo(logical.ReadOperation, "config/c5", nil).Data
	expectField(t, apivideo, "refresh_url", base+"/auth/refresh")
}

// secretReadKeys: what a read shows of a write-only field, and the value.
var secretReadKeys = map[string]struct {
	key  string
	want any
}{
	"client_secret":        {"client_secret_set", true},
	"client_secrets":       {"client_secrets_count", 2},
	"api_key":              {"api_key_set", true},
	"refresh_token":        {"refresh_token_set", true},
	"private_key":          {"private_key_set", true},
	"generate_key":         {"key_generated", true},
	"service_account_json": {"private_key_set", true},
	"certificate":          {"certificate_set", true},
}

// TestConfigFieldsRoundTrip writes every config field (configFields, from
// configFieldTable) over a few configs and reads each back: a new field
// fails here until it is written and read.
func TestConfigFieldsRoundTrip(t *testing.T) {
	e := newEnv(t)
	base := e.fake.URL()
	seed := e.fake.SeedRefreshToken(fakeprovider.OAuth2, testClientID)
	serviceAccount := fmt.Sprintf(`{"type":"service_account","private_key_id":"sa-kid-1","private_key":%q,"client_email":"sa@p.iam.gserviceaccount.com","token_uri":%q}`,
		pkcs8PEM(testRSA), base+fakeprovider.PathGoogleToken)
	// Each config writes fields; want overrides what a field reads back as
	// (default: the value written, compared as fmt.Sprint prints it).
	configs := []struct {
		write map[string]any
		want  map[string]any
	}{
		{write: map[string]any{
			"provider": "oauth2", "token_url": base + fakeprovider.PathOAuth2Token, "refresh_url": base + "/refresh",
			"client_id": testClientID, "client_secret": testClientSecret, "client_secrets": []string{"second", testClientSecret + "3"},
			"refresh_token": seed, "scopes": []string{"a", "b"}, "audience": "api",
			"allowed_scopes": []string{"a", "b"}, "allowed_audiences": []string{"api"}, "allowed_resources": "HTTPS://Graph.example:443/v1",
			"extra_params": map[string]any{"resource": "r"},
			"auth_style":   "private_key_jwt", "encoding": "json", "refresh_ahead": 120, "default_ttl": "2h", "timeout": "10s",
			"ca_pem": e.fake.CAPEM(), "refresh_grant": "auto", "revokes_previous_token": "on_refresh", "refresh_reuse_grace": 30,
			"auth_url": base + fakeprovider.PathAuthorize, "device_authorization_url": base + fakeprovider.PathDeviceAuthorization,
			"redirect_uri": testRedirect, "pkce": "off", "auth_params": map[string]any{"prompt": "consent"}, "response_mode": "query",
			"revocation_url": base + fakeprovider.PathRevoke, "userinfo_url": base + fakeprovider.PathUserinfo, "identity_match": "email",
			"issuer": base, "grant": "client_credentials", "private_key": pkcs8PEM(testRSA), "certificate": certPEM(t, testRSA),
			"key_id": "kid-1", "signing_alg": "PS256", "assertion_issuer": "iss-1", "assertion_subject": "sub-1",
			"assertion_audience": "aud-1", "assertion_ttl": "1m", "assertion_claims": map[string]any{"tid": "t1"},
		}, want: map[string]any{"client_secrets_count": 3, "allowed_resources": "[https://graph.example/v1]", "default_ttl": 7200, "timeout": 10, "assertion_ttl": 60}},
		{write: map[string]any{
			"provider": "github_app", "ca_pem": e.fake.CAPEM(), "api_url": base + fakeprovider.PathGitHubAPI, "app_id": "1234",
			"installation_id": "42", "installation_owner": "acme", "generate_key": "rsa-2048", "repositories": "web,api",
			"repository_ids": []int{7, 9}, "permissions": "contents=read",
		}, want: map[string]any{"repositories": "[web api]", "permissions": "map[contents:read]"}},
		{write: map[string]any{"provider": "apivideo", "token_url": base + fakeprovider.APIVideo.TokenPath(), "ca_pem": e.fake.CAPEM(),
			"api_key": testAPIKey}},
		{write: map[string]any{"provider": "okta", "tenant": "example.okta.com", "client_id": testClientID,
			"client_secret": testClientSecret, "scopes": "okta.users.read"}, want: map[string]any{"scopes": "[okta.users.read]"}},
		{write: map[string]any{"provider": "google", "ca_pem": e.fake.CAPEM(), "service_account_json": serviceAccount, "scopes": "s"},
			want: map[string]any{"scopes": "[s]"}},
	}
	// A connection's config holds its app's name (app.go).
	e.mustDo(logical.CreateOperation, "app/rt-app", map[string]any{"token_url": base + fakeprovider.PathOAuth2Token,
		"ca_pem": e.fake.CAPEM(), "client_id": testClientID, "client_secret": testClientSecret})
	configs = append(configs, struct {
		write, want map[string]any
	}{write: map[string]any{"app": "rt-app"}})
	written := map[string]bool{"name": true} // the path's
	for i, c := range configs {
		name := fmt.Sprintf("rt%d", i)
		e.mustDo(logical.CreateOperation, "config/"+name, c.write)
		data := e.mustDo(logical.ReadOperation, "config/"+name, nil).Data
		raw, _ := json.Marshal(data)
		for field, value := range c.write {
			written[field] = true
			key, want := field, value
			if s, ok := secretReadKeys[field]; ok {
				key, want = s.key, s.want
				if v, isString := value.(string); isString && isSecretField(configFields[field]) && strings.Contains(string(raw), strings.TrimSpace(v)) {
					t.Errorf("%s: the read shows the secret %s", name, field)
				}
			}
			if w, ok := c.want[key]; ok {
				want = w
			}
			got, ok := data[key]
			if !ok {
				t.Errorf("%s: wrote %s, the read has no %s", name, field, key)
			} else if strings.TrimSpace(fmt.Sprint(got)) != strings.TrimSpace(fmt.Sprint(want)) {
				t.Errorf("%s: wrote %s, read %s = %v, want %v", name, field, key, got, want)
			}
		}
	}
	for field := range configFields {
		if !written[field] {
			t.Errorf("config field %s is not written by this test: add it to a config above", field)
		}
	}
}

// TestAuthStyleValuesAgree: the values auth_style and encoding allow are
// those validate accepts and its message names (private_key_jwt included).
func TestAuthStyleValuesAgree(t *testing.T) {
	expect(t, "auth_style allowed", fmt.Sprint(configFields["auth_style"].AllowedValues), "[basic body none private_key_jwt]")
	expect(t, "encoding allowed", fmt.Sprint(configFields["encoding"].AllowedValues), "[form json query]")
	for _, s := range provider.AuthStyles {
		if !s.Valid() {
			t.Errorf("auth_style %s is allowed but not valid", s)
		}
	}
	for _, enc := range provider.Encodings {
		if !enc.Valid() {
			t.Errorf("encoding %s is allowed but not valid", enc)
		}
	}
	e := newEnv(t)
	_, err := e.do(logical.CreateOperation, "config/x", map[string]any{"token_url": e.fake.URL() + fakeprovider.PathOAuth2Token,
		"client_id": testClientID, "client_secret": testClientSecret, "auth_style": "mtls"})
	expectErr(t, "auth_style=mtls", err, `unknown auth_style "mtls" (want basic, body, none or private_key_jwt)`)
}
