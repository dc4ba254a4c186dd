package provider_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"reflect"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/internal/assertionop"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// startZitadel runs zitadel/oidc's OpenID provider with a private_key_jwt
// client "svc" allowed the scopes read and write, and returns an endpoint
// of that client.
func startZitadel(t *testing.T) (*assertionop.OP, *provider.Endpoint, *provider.Client, context.Context) {
	t.Helper()
	o, err := assertionop.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o.AddClient("svc", jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"})
	o.AllowScopes("svc", "read", "write")
	e := &provider.Endpoint{Dialect: provider.OAuth2, TokenURL: o.TokenURL, ClientID: "svc", Scopes: []string{"read", "write"},
		Key: &provider.SigningKey{Signer: key, KeyID: "k1"}, Assertion: provider.Assertion{Audience: o.Issuer}}
	hc, _ := provider.NewHTTPClient("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return o, e, &provider.Client{HTTP: hc}, ctx
}

// TestZitadelNarrowedClientCredentials: a real OpenID provider grants a
// narrowed scope and refuses one outside the client's (invalid_scope).
func TestZitadelNarrowedClientCredentials(t *testing.T) {
	o, e, c, ctx := startZitadel(t)
	cases := []struct {
		name   string
		scopes []string
		want   []string // the token's scope; nil: a refusal
	}{
		{"the configured scopes", nil, []string{"read", "write"}},
		{"a subset", []string{"read"}, []string{"read"}},
		{"a scope outside", []string{"read", "admin"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantClientCredentials, Narrowing: &provider.Narrowing{Scopes: tc.scopes}})
			if tc.want == nil {
				wantRefusedNarrowing(t, err, "invalid_scope")
				return
			}
			if err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			if !reflect.DeepEqual(tok.Scopes, tc.want) {
				t.Errorf("scope: got %q, want %q", tok.Scopes, tc.want)
			}
			if subject, ok := o.Subject(tok.AccessToken); !ok || subject != "svc" {
				t.Errorf("Subject: got %q, %v; want svc, true", subject, ok)
			}
		})
	}
}

// TestZitadelTokenExchange: zitadel's RFC 8693 grant (op.TokenExchange)
// exchanges a client credentials token for one with an audience, with the
// client's private_key_jwt authentication; what is outside is refused in
// RFC 8693 §2.2.2's terms.
func TestZitadelTokenExchange(t *testing.T) {
	o, e, c, ctx := startZitadel(t)
	base, err := c.Exchange(ctx, e, provider.GrantClientCredentials, "")
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(subject string, n *provider.Narrowing, requested string) (*provider.Token, error) {
		return c.Send(ctx, e, provider.TokenRequest{Grant: provider.GrantTokenExchange, Narrowing: n,
			Exchange: &provider.TokenExchange{SubjectToken: subject, SubjectTokenType: provider.TokenTypeAccessToken, RequestedTokenType: requested}})
	}

	t.Run("not enabled: the client may not use the grant", func(t *testing.T) {
		_, err := exchange(base.AccessToken, &provider.Narrowing{Audiences: []string{"api-a"}}, "")
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Refused || pe.Code != "unauthorized_client" {
			t.Fatalf("Send: got %v, want a refused unauthorized_client", err)
		}
	})

	o.EnableTokenExchange("api-a", "api-b", "https://res.example")
	cases := []struct {
		name      string
		subject   string
		n         *provider.Narrowing
		requested string
		code      string // "" for a token
		narrowing bool   // the refusal is of the narrowing
		wantAud   []string
		wantScope []string
	}{
		{"an audience and a scope", base.AccessToken, &provider.Narrowing{Audiences: []string{"api-a"}, Scopes: []string{"read"}}, "",
			"", false, []string{"api-a"}, []string{"read"}},
		{"two audiences, access token requested", base.AccessToken, &provider.Narrowing{Audiences: []string{"api-b", "api-a"}}, provider.TokenTypeAccessToken,
			"", false, []string{"api-a", "api-b"}, nil},
		{"an audience outside", base.AccessToken, &provider.Narrowing{Audiences: []string{"api-c"}}, "", "invalid_target", true, nil, nil},
		{"a resource outside", base.AccessToken, &provider.Narrowing{Resources: []string{"https://other.example"}}, "", "invalid_target", true, nil, nil},
		{"a scope outside", base.AccessToken, &provider.Narrowing{Scopes: []string{"admin"}}, "", "invalid_scope", true, nil, nil},
		{"a subject token the OP never issued", "not-a-token", &provider.Narrowing{Audiences: []string{"api-a"}}, "", "invalid_request", false, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := exchange(tc.subject, tc.n, tc.requested)
			if tc.code != "" {
				var pe *provider.Error
				if !errors.As(err, &pe) || pe.Class != provider.Refused || pe.Code != tc.code || pe.NarrowingRefused != tc.narrowing {
					t.Fatalf("Send: got %#v, want a refused %s with NarrowingRefused %v", err, tc.code, tc.narrowing)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			if tok.IssuedTokenType != provider.TokenTypeAccessToken || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
				t.Errorf("token: got issued_token_type %q, token_type %q, expires in %s", tok.IssuedTokenType, tok.TokenType, tok.ExpiresIn)
			}
			if got := o.Audiences(tok.AccessToken); !reflect.DeepEqual(got, tc.wantAud) {
				t.Errorf("Audiences: got %q, want %q", got, tc.wantAud)
			}
			if tc.wantScope != nil && !reflect.DeepEqual(tok.Scopes, tc.wantScope) {
				t.Errorf("scope: got %q, want %q", tok.Scopes, tc.wantScope)
			}
			if subject, ok := o.Subject(tok.AccessToken); !ok || subject != "svc" {
				t.Errorf("Subject: got %q, %v; want svc, true", subject, ok)
			}
		})
	}
}
