package tokenbroker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// configSigned writes config/<name> for a signing dialect against the fake,
// without the env's client secret, and returns its key/<name> read.
func (e *env) configSigned(name, dialect string, fields map[string]any) map[string]any {
	e.t.Helper()
	data := withFields(map[string]any{"provider": dialect, "ca_pem": e.fake.CAPEM()}, fields)
	e.mustDo(logical.CreateOperation, "config/"+name, data)
	return e.mustDo(logical.ReadOperation, "key/"+name, nil).Data
}

// TestSignedDialects: each preset mints through its fake, which verifies
// every signature with go-jose against the public key read from key/<name>
// and refuses what the real service refuses; a second read is cached.
func TestSignedDialects(t *testing.T) {
	e := newEnv(t)
	base := e.fake.URL()
	serviceAccount := fmt.Sprintf(`{"type":"service_account","project_id":"p","private_key_id":"sa-kid-1","private_key":%q,"client_email":"sa@p.iam.gserviceaccount.com","token_uri":%q}`,
		pkcs8PEM(testRSA), base+fakeprovider.PathGoogleToken)
	cases := []struct {
		name, dialect string
		fields        map[string]any
		register      func(key map[string]any)
		check         func(t *testing.T, creds map[string]any)
	}{
		{"google service account", "google", map[string]any{"service_account_json": serviceAccount, "scopes": "https://www.googleapis.com/auth/cloud-platform"},
			func(key map[string]any) {
				e.fake.AddAssertionKey("sa@p.iam.gserviceaccount.com", "sa-kid-1", publicKey(t, key, ""))
			}, nil},
		{"salesforce JWT bearer", "salesforce_jwt", map[string]any{"token_url": base + fakeprovider.PathSalesforceToken,
			"client_id": "consumer-key", "assertion_subject": "integration@acme.com", "private_key": pkcs1PEM(testRSA), "default_ttl": "2h"},
			func(key map[string]any) {
				e.fake.AddAssertionKey("consumer-key", "", publicKey(t, key, ""))
				e.fake.AddSalesforceUser("consumer-key", "integration@acme.com")
			},
			func(t *testing.T, creds map[string]any) { expectField(t, creds, "rotation_period", int64(7200)) }},
		{"microsoft certificate credential of a generated key", "microsoft", map[string]any{"token_url": base + fakeprovider.MicrosoftTokenPath("tenant-1"),
			"client_id": "ms-app", "generate_key": "rsa-2048", "scopes": "https://graph.microsoft.com/.default"},
			func(key map[string]any) {
				if err := e.fake.AddAssertionCertificate("ms-app", certDER(t, key, "")); err != nil {
					t.Fatal(err)
				}
			}, nil},
		{"okta service app with an EC key", "okta", map[string]any{"token_url": base + fakeprovider.PathOktaToken,
			"client_id": "0oa-service", "generate_key": "ec-p256", "scopes": "okta.users.read"},
			func(key map[string]any) { e.fake.AddAssertionKey("0oa-service", "", publicKey(t, key, "")) }, nil},
		{"github app by owner", "github_app", map[string]any{"api_url": base + fakeprovider.PathGitHubAPI, "app_id": "1234",
			"installation_owner": "acme", "private_key": pkcs1PEM(testRSA), "repositories": "web", "permissions": "contents=read"},
			func(key map[string]any) {
				e.fake.AddAssertionKey("1234", "", publicKey(t, key, ""))
				e.fake.AddGitHubInstallation("1234", "acme", true, 42, "api", "web")
			},
			func(t *testing.T, creds map[string]any) {
				if fmt.Sprint(creds["repositories"]) != "[web]" || fmt.Sprint(creds["permissions"]) != "map[contents:read]" {
					t.Errorf("creds repositories %v permissions %v, want [web] and contents:read", creds["repositories"], creds["permissions"])
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := strings.ReplaceAll(c.name, " ", "-")
			key := e.configSigned(name, c.dialect, c.fields)
			if _, err := e.creds(name, nil); err == nil {
				t.Fatal("the fake accepted an assertion before its key was registered")
			}
			c.register(key)
			resp := e.mustDo(logical.ReadOperation, "creds/"+name, nil)
			tok, _ := resp.Data["access_token"].(string)
			if !e.fake.Valid(tok) {
				t.Fatalf("the fake does not accept the token %q", tok)
			}
			calls := e.fake.TotalCalls()
			if again := e.token(name); again != tok || e.fake.TotalCalls() != calls {
				t.Errorf("a second read called the provider; want the cached token")
			}
			if c.check != nil {
				c.check(t, resp.Data)
			}
		})
	}
}

// TestGitHubInstallationFoundOnceAndRevoked: the owner's installation is
// looked up once and kept in the config; evicting a token revokes it at
// GitHub, best effort.
func TestGitHubInstallationFoundOnceAndRevoked(t *testing.T) {
	e := newEnv(t)
	e.fake.AddAssertionKey("77", "", &testRSA.PublicKey)
	e.fake.AddGitHubInstallation("77", "octo", false, 9, "dotfiles")
	e.configSigned("gh", "github_app", map[string]any{"api_url": e.fake.URL() + fakeprovider.PathGitHubAPI, "app_id": "77",
		"installation_owner": "octo", "private_key": pkcs1PEM(testRSA)})
	first := e.token("gh")
	cfg := e.mustDo(logical.ReadOperation, "config/gh", nil).Data
	expectField(t, cfg, "installation_id", "9")
	expectField(t, cfg, "timeout", int64(120)) // github_app's own default: big answers
	lookups := e.fake.Calls(fakeprovider.PathGitHubAPI+"/orgs/octo/installation") + e.fake.Calls(fakeprovider.PathGitHubAPI+"/users/octo/installation")
	expect(t, "installation lookups (the organization's 404, then the user's)", lookups, 2)

	resp := e.mustDo(logical.DeleteOperation, "creds/gh", nil)
	if resp != nil && len(resp.Warnings) > 0 {
		t.Fatalf("evicting warned: %v", resp.Warnings)
	}
	if e.fake.Valid(first) || e.fake.GitHubRevocations() != 1 {
		t.Errorf("after eviction the token is valid=%v, revocations=%d; want revoked once", e.fake.Valid(first), e.fake.GitHubRevocations())
	}
	second := e.token("gh")
	if second == first {
		t.Error("the read after eviction returned the revoked token")
	}
	lookups = e.fake.Calls(fakeprovider.PathGitHubAPI+"/orgs/octo/installation") + e.fake.Calls(fakeprovider.PathGitHubAPI+"/users/octo/installation")
	expect(t, "installation lookups after a second mint", lookups, 2)

	e.clock.Add(2 * time.Hour) // the token expired: revoking it fails, and eviction still works
	resp = e.mustDo(logical.DeleteOperation, "creds/gh", nil)
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "could not be revoked") {
		t.Errorf("evicting an expired token: response %v, want one warning that it could not be revoked", resp)
	}
	expectSeries(t, scrapeSeries(e), map[string]float64{ // the lookup and revocations are provider requests too
		`tokenbroker_provider_requests_total{error="none",grant="installation_lookup",name="gh",outcome="success"}`: 1,
		`tokenbroker_provider_requests_total{error="none",grant="revocation",name="gh",outcome="success"}`:          1,
		`tokenbroker_provider_requests_total{error="http_4xx",grant="revocation",name="gh",outcome="refused"}`:      1,
	})
}
