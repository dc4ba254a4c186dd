package provider_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// startFake runs the strict fake with client "app" for the test, and a
// Client and context for it.
func startFake(t *testing.T) (*fakeprovider.Server, *provider.Client, context.Context) {
	t.Helper()
	fake := fakeprovider.New(fakeprovider.Options{Logf: t.Logf})
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddClient("app", "app-s3cret")
	hc, _ := provider.NewHTTPClient("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return fake, &provider.Client{HTTP: hc}, ctx
}

// wantRefusedNarrowing checks err is the provider's refusal of a narrowing.
func wantRefusedNarrowing(t *testing.T, err error, code string) {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.Refused || !pe.NarrowingRefused || pe.Code != code {
		t.Fatalf("Send: got %v, want a refused %s with NarrowingRefused", err, code)
	}
}

// TestNarrowingAtTheFake: narrowed client credentials, refresh and token
// exchange against the strict oauth2 fake: within the client's bounds a
// token for exactly that, one upstream call per variant; outside, a
// refusal of the narrowing that leaves the refresh token usable.
func TestNarrowingAtTheFake(t *testing.T) {
	fake, c, ctx := startFake(t)
	fake.SetClientPolicy("app", fakeprovider.ClientPolicy{Scopes: []string{"read", "write"},
		Resources: []string{"https://a.example", "https://b.example"}, Audiences: []string{"svc"}})
	fake.SetTokenExchange(fakeprovider.TokenExchangeSameClient)
	e := &provider.Endpoint{Dialect: provider.OAuth2, TokenURL: fake.URL() + fakeprovider.PathOAuth2Token,
		ClientID: "app", ClientSecret: "app-s3cret", Scopes: []string{"read", "write"}}

	base, err := c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantClientCredentials,
		Narrowing: &provider.Narrowing{Resources: []string{"HTTPS://A.example:443", "https://b.example"}}})
	if err != nil {
		t.Fatalf("client credentials for two resources: got %v, want a token", err)
	}
	if got, want := fake.Audiences(base.AccessToken), []string{"https://a.example", "https://b.example"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Audiences: got %q, want %q (normalised as sent)", got, want)
	}

	cases := []struct {
		name     string
		in       provider.TokenRequest
		code     string // a refusal of the narrowing; "" for a token
		scope    string // IssuedFor's
		aud      []string
		newChain bool // the answer's refresh token continues the chain
	}{
		{"client credentials, one scope", provider.TokenRequest{Grant: provider.GrantClientCredentials,
			Narrowing: &provider.Narrowing{Scopes: []string{"read"}}}, "", "read", nil, false},
		{"client credentials, a scope outside", provider.TokenRequest{Grant: provider.GrantClientCredentials,
			Narrowing: &provider.Narrowing{Scopes: []string{"admin"}}}, "invalid_scope", "", nil, false},
		{"client credentials, a resource outside", provider.TokenRequest{Grant: provider.GrantClientCredentials,
			Narrowing: &provider.Narrowing{Resources: []string{"https://c.example"}}}, "invalid_target", "", nil, false},
		{"refresh, a scope not originally granted", provider.TokenRequest{Grant: provider.GrantRefreshToken,
			Narrowing: &provider.Narrowing{Scopes: []string{"read", "admin"}}}, "invalid_scope", "", nil, false},
		{"refresh, a resource not originally granted", provider.TokenRequest{Grant: provider.GrantRefreshToken,
			Narrowing: &provider.Narrowing{Resources: []string{"https://c.example"}}}, "invalid_target", "", nil, false},
		{"refresh, one scope and one resource", provider.TokenRequest{Grant: provider.GrantRefreshToken,
			Narrowing: &provider.Narrowing{Scopes: []string{"write"}, Resources: []string{"https://b.example"}}}, "", "write", []string{"https://b.example"}, true},
		{"token exchange for an audience", provider.TokenRequest{Grant: provider.GrantTokenExchange,
			Narrowing: &provider.Narrowing{Audiences: []string{"svc"}, Scopes: []string{"read"}}}, "", "read", []string{"svc"}, false},
		{"token exchange for an audience outside", provider.TokenRequest{Grant: provider.GrantTokenExchange,
			Narrowing: &provider.Narrowing{Audiences: []string{"elsewhere"}}}, "invalid_target", "", nil, false},
	}
	chain := base.RefreshToken
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			switch in.Grant {
			case provider.GrantRefreshToken:
				in.RefreshToken = chain
			case provider.GrantTokenExchange:
				in.Exchange = &provider.TokenExchange{SubjectToken: base.AccessToken, SubjectTokenType: provider.TokenTypeAccessToken}
			}
			before := fake.TotalCalls()
			tok, err := c.Send(ctx, e, in)
			if got := fake.TotalCalls() - before; got != 1 {
				t.Errorf("upstream calls: got %d, want 1", got)
			}
			if tc.code != "" {
				wantRefusedNarrowing(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			if got := fake.Audiences(tok.AccessToken); !reflect.DeepEqual(got, tc.aud) {
				t.Errorf("Audiences: got %q, want %q", got, tc.aud)
			}
			if got := fake.IssuedFor(tc.scope, tc.aud...); got != 1 {
				t.Errorf("IssuedFor(%q, %q): got %d, want 1", tc.scope, tc.aud, got)
			}
			if tc.newChain {
				chain = tok.RefreshToken
			}
		})
	}
	// The refused narrowings spent nothing; the chain's token keeps the
	// original scope and resources (RFC 6749 §6).
	tok, err := c.Exchange(ctx, e, provider.GrantRefreshToken, chain)
	if err != nil {
		t.Fatalf("refresh without narrowing: got %v, want a token", err)
	}
	if got, want := fake.Audiences(tok.AccessToken), []string{"https://a.example", "https://b.example"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Audiences after the narrowed refreshes: got %q, want %q", got, want)
	}
	if fake.RefreshReuses() != 0 {
		t.Errorf("RefreshReuses: got %d, want 0", fake.RefreshReuses())
	}
}

// TestMicrosoftPerResourceRefreshAtTheFake: one Microsoft refresh token
// gives a Graph token and an Azure Resource Manager token, each narrowed
// refresh keeping offline_access so a new refresh token comes back; a
// resource without consent is a refusal of the narrowing (AADSTS65001),
// not of the refresh token.
func TestMicrosoftPerResourceRefreshAtTheFake(t *testing.T) {
	fake, c, ctx := startFake(t)
	rt := fake.SeedMicrosoftRefreshToken("app", "https://graph.microsoft.com/User.Read",
		"https://management.azure.com/user_impersonation", "offline_access")
	e := &provider.Endpoint{Dialect: provider.Microsoft, TokenURL: fake.URL() + fakeprovider.MicrosoftTokenPath("contoso"),
		ClientID: "app", ClientSecret: "app-s3cret"}
	for _, tc := range []struct {
		name, scope, resource string
	}{
		{"Graph", "https://graph.microsoft.com/.default", "https://graph.microsoft.com"},
		{"Azure Resource Manager", "https://management.azure.com/.default", "https://management.azure.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantRefreshToken, RefreshToken: rt,
				Narrowing: &provider.Narrowing{Scopes: []string{tc.scope}}})
			if err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			if got := fake.Audiences(tok.AccessToken); !reflect.DeepEqual(got, []string{tc.resource}) {
				t.Errorf("Audiences: got %q, want [%s]", got, tc.resource)
			}
			if tok.RefreshToken == "" {
				t.Error("refresh_token: got none, want a new one (offline_access was asked)")
			}
			if got := fake.LastRequest(fakeprovider.MicrosoftTokenPath("contoso")).Params["scope"]; got != tc.scope+" offline_access" {
				t.Errorf("scope sent: got %q, want %q", got, tc.scope+" offline_access")
			}
		})
	}
	_, err := c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantRefreshToken, RefreshToken: rt,
		Narrowing: &provider.Narrowing{Scopes: []string{"https://vault.azure.net/.default"}}})
	wantRefusedNarrowing(t, err, "invalid_grant")
}

// TestNarrowedInstallationTokenAtTheFake: an installation token narrowed to
// one repository and read access, as GitHub answers it; a permission above
// the app's is GitHub's 422, a refusal of the narrowing.
func TestNarrowedInstallationTokenAtTheFake(t *testing.T) {
	fake, c, ctx := startFake(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fake.AddAssertionKey("1234", "", &key.PublicKey)
	fake.AddGitHubInstallation("1234", "acme", true, 42, "api", "web")
	fake.SetGitHubInstallationPermissions(42, map[string]string{"contents": "write", "issues": "read"})
	e := &provider.Endpoint{Dialect: provider.GitHubApp, Key: &provider.SigningKey{Signer: key},
		Installation: &provider.Installation{AppID: "1234", InstallationID: "42", APIURL: fake.URL() + fakeprovider.PathGitHubAPI}}

	tok, err := c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantInstallationToken,
		Narrowing: &provider.Narrowing{Repositories: []string{"web"}, Permissions: map[string]string{"contents": "read"}}})
	if err != nil {
		t.Fatalf("Send: got %v, want a token", err)
	}
	if !reflect.DeepEqual(tok.Repositories, []string{"web"}) || !reflect.DeepEqual(tok.Permissions, map[string]string{"contents": "read"}) {
		t.Errorf("token: got repositories %q permissions %v, want [web] and contents:read", tok.Repositories, tok.Permissions)
	}
	_, err = c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantInstallationToken,
		Narrowing: &provider.Narrowing{Permissions: map[string]string{"issues": "write"}}})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Status != 422 || !pe.NarrowingRefused {
		t.Fatalf("write where the app has read: got %v, want GitHub's 422 with NarrowingRefused", err)
	}
	if got := fake.Grants("installation_token"); got != 1 {
		t.Errorf(`Grants("installation_token"): got %d, want 1`, got)
	}
}
