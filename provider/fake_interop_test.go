package provider_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// TestConnectionAgainstTheFake: a user's connection made by this client at
// the strict fake, its account read (OpenID userinfo and GitHub's /user),
// then its refresh token revoked with each client authentication: the fake
// counts the revocation and refuses the grant's tokens afterwards.
func TestConnectionAgainstTheFake(t *testing.T) {
	for _, style := range []provider.AuthStyle{provider.AuthBasic, provider.AuthBody} {
		t.Run(string(style), func(t *testing.T) {
			fake := fakeprovider.New(fakeprovider.Options{Logf: t.Logf})
			if err := fake.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fake.Close)
			fake.AddClient("app", "s3cret")
			fake.SetAccount("user-42", "jane@example.test")
			hc, _ := provider.NewHTTPClient("")
			c := &provider.Client{HTTP: hc}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			e := &provider.Endpoint{Dialect: provider.OAuth2, ClientID: "app", ClientSecret: "s3cret", AuthStyle: style,
				AuthURL: fake.URL() + fakeprovider.PathAuthorize, TokenURL: fake.URL() + fakeprovider.PathOAuth2Token,
				RedirectURI: "http://127.0.0.1/cb", RevocationURL: fake.URL() + fakeprovider.PathRevoke,
				UserinfoURL: fake.URL() + fakeprovider.PathUserinfo}
			verifier := provider.NewSecret()
			authURL, err := e.AuthorizationURL("st", verifier)
			if err != nil {
				t.Fatal(err)
			}
			back, err := fake.Authorize(authURL)
			if err != nil {
				t.Fatalf("Authorize: got %v, want a redirect", err)
			}
			u, _ := url.Parse(back)
			tok, err := c.ExchangeCode(ctx, e, u.Query().Get("code"), verifier)
			if err != nil {
				t.Fatalf("ExchangeCode: got %v, want a token", err)
			}

			want := provider.Account{Subject: "user-42", Email: "jane@example.test", EmailVerified: true, Name: "jane"}
			if got, err := c.Account(ctx, e, tok.AccessToken); err != nil || got != want {
				t.Fatalf("Account: got %+v, %v; want %+v", got, err, want)
			}
			gh := &provider.Endpoint{Dialect: provider.GitHub, UserinfoURL: fake.URL() + fakeprovider.PathGitHubAPI + "/user"}
			wantGitHub := provider.Account{Subject: "2", Name: "user-42", Email: "jane@example.test"}
			if got, err := c.Account(ctx, gh, tok.AccessToken); err != nil || got != wantGitHub {
				t.Fatalf("Account (GitHub): got %+v, %v; want %+v", got, err, wantGitHub)
			}

			if err := c.RevokeToken(ctx, e, tok.RefreshToken, provider.HintRefreshToken); err != nil {
				t.Fatalf("RevokeToken: got %v, want nil", err)
			}
			if fake.Revocations() != 1 || !fake.RefreshTokenRevoked(tok.RefreshToken) || fake.Valid(tok.AccessToken) {
				t.Fatalf("after RevokeToken: Revocations %d, RefreshTokenRevoked %v, access token valid %v; want 1, true, false",
					fake.Revocations(), fake.RefreshTokenRevoked(tok.RefreshToken), fake.Valid(tok.AccessToken))
			}
			if _, err := c.Exchange(ctx, e, provider.GrantRefreshToken, tok.RefreshToken); err == nil {
				t.Fatal("refresh with the revoked token: got a token, want a refusal")
			}
			if _, err := c.Account(ctx, e, tok.AccessToken); err == nil {
				t.Fatal("Account with a revoked access token: got an account, want a refusal")
			}
			if got := fake.LastRequest(fakeprovider.PathRevoke).Header.Get("Authorization") != ""; got != (style == provider.AuthBasic) {
				t.Errorf("revocation sent HTTP Basic: got %v, want %v", got, style == provider.AuthBasic)
			}
		})
	}
}
