package provider

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestChallengeIsRFC7636AppendixB(t *testing.T) {
	// RFC 7636 Appendix B's example verifier and its S256 challenge.
	got := Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
	if want := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"; got != want {
		t.Fatalf("Challenge = %q, want %q", got, want)
	}
}

func TestNewSecretHas256Bits(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if len(a) != 43 || a == b || strings.ContainsAny(a, "+/=.") {
		t.Fatalf("NewSecret = %q, %q; want two different 43-character base64url strings", a, b)
	}
}

func TestAuthorizationURL(t *testing.T) {
	base := Endpoint{Dialect: OAuth2, ClientID: "app", RedirectURI: "https://vault.example/v1/tokenbroker/callback",
		AuthURL: "https://idp.example/authorize?tenant=t1", Scopes: []string{"read", "write"}}
	cases := []struct {
		name   string
		change func(e *Endpoint)
		want   map[string]string // "" means absent
	}{
		{"oauth2 with PKCE by default", nil, map[string]string{
			"response_type": "code", "client_id": "app", "redirect_uri": base.RedirectURI, "scope": "read write",
			"state": "st", "code_challenge": Challenge("ver"), "code_challenge_method": "S256", "tenant": "t1"}},
		{"pkce off sends no challenge", func(e *Endpoint) { e.PKCE = PKCEOff }, map[string]string{
			"code_challenge": "", "code_challenge_method": ""}},
		{"auth_params are added but never override", func(e *Endpoint) {
			e.AuthParams = map[string]string{"prompt": "login", "state": "evil", "client_id": "evil"}
		}, map[string]string{"prompt": "login", "state": "st", "client_id": "app"}},
		{"google asks for offline access", func(e *Endpoint) { e.Dialect = Google }, map[string]string{
			"access_type": "offline", "prompt": "consent"}},
		{"a config's auth_params win over the preset's", func(e *Endpoint) {
			e.Dialect, e.AuthParams = Google, map[string]string{"prompt": "select_account"}
		}, map[string]string{"prompt": "select_account", "access_type": "offline"}},
		{"microsoft adds offline_access once", func(e *Endpoint) {
			e.Dialect, e.Scopes = Microsoft, []string{"User.Read", "offline_access"}
		}, map[string]string{"scope": "User.Read offline_access"}},
		{"intuit does not use PKCE", func(e *Endpoint) { e.Dialect = Intuit }, map[string]string{"code_challenge": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := base
			if c.change != nil {
				c.change(&e)
			}
			raw, err := e.AuthorizationURL("st", "ver")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(raw)
			if u.Host != "idp.example" || u.Path != "/authorize" {
				t.Fatalf("URL = %s, want it at https://idp.example/authorize", raw)
			}
			q := u.Query()
			for k, want := range c.want {
				if got := q.Get(k); got != want {
					t.Errorf("%s = %q, want %q (URL %s)", k, got, want, raw)
				}
			}
		})
	}
}

func TestExchangeCode(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", `{"access_token":"at","refresh_token":"rt","expires_in":3600}`)
	hc, _ := NewHTTPClient("")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cases := []struct {
		name   string
		e      Endpoint
		want   map[string]string
		basic  bool
		noKeys []string
	}{
		{"confidential client with PKCE, HTTP Basic", Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", RedirectURI: "https://v/cb"},
			map[string]string{"grant_type": "authorization_code", "code": "the-code", "redirect_uri": "https://v/cb", "code_verifier": "the-verifier"},
			true, []string{"client_secret", "scope", "state"}},
		{"public client names itself", Endpoint{Dialect: OAuth2, ClientID: "app", AuthStyle: AuthNone},
			map[string]string{"client_id": "app", "code_verifier": "the-verifier"}, false, []string{"redirect_uri", "client_secret"}},
		{"pkce off sends no verifier", Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", AuthStyle: AuthBody, PKCE: PKCEOff},
			map[string]string{"client_id": "app", "client_secret": "sec"}, false, []string{"code_verifier"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.e
			e.TokenURL = srv.URL + "/token"
			tok, err := (&Client{HTTP: hc}).ExchangeCode(ctx, &e, "the-code", "the-verifier")
			if err != nil || tok.AccessToken != "at" || tok.RefreshToken != "rt" {
				t.Fatalf("ExchangeCode = %+v, %v; want at and rt", tok, err)
			}
			form, _ := url.ParseQuery(rec.body)
			for k, want := range c.want {
				if got := form.Get(k); got != want {
					t.Errorf("%s = %q, want %q (body %s)", k, got, want, rec.body)
				}
			}
			for _, k := range c.noKeys {
				if form.Has(k) {
					t.Errorf("%s sent, want absent (body %s)", k, rec.body)
				}
			}
			if got := strings.HasPrefix(rec.auth, "Basic "); got != c.basic {
				t.Errorf("HTTP Basic = %v, want %v", got, c.basic)
			}
		})
	}
}

func TestExchangeCodeErrorCarriesNoCodeOrVerifier(t *testing.T) {
	srv, _ := serve(t, 400, "application/json", `{"error":"invalid_grant","error_description":"code the-code with verifier the-verifier is bad"}`)
	hc, _ := NewHTTPClient("")
	e := Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "app", ClientSecret: "sec"}
	_, err := (&Client{HTTP: hc}).ExchangeCode(context.Background(), &e, "the-code", "the-verifier")
	pe, ok := err.(*Error)
	if !ok || pe.Class != Refused || pe.Code != "invalid_grant" {
		t.Fatalf("err = %v, want a refused invalid_grant", err)
	}
	if msg := err.Error(); strings.Contains(msg, "the-code") || strings.Contains(msg, "the-verifier") {
		t.Fatalf("error %q repeats the code or verifier", msg)
	}
}

func TestUserOnlyPresetsCannotMint(t *testing.T) {
	for _, d := range []Dialect{Google, GitHub, Salesforce, Xero, Intuit, Zoom, Box, Auth0} {
		e := Endpoint{Dialect: d, ClientID: "app", ClientSecret: "sec", TokenURL: "https://idp.example/token"}
		if e.CanMint() || e.MintNeeds() != NeedsAuthorization {
			t.Errorf("%s: CanMint = %v, MintNeeds = %q; want false and %q", d, e.CanMint(), e.MintNeeds(), NeedsAuthorization)
		}
		if _, err := e.NewRequest(context.Background(), e.BaseGrant(), ""); err == nil {
			t.Errorf("%s: NewRequest of the base grant succeeded, want an error", d)
		}
	}
}

func TestPresetURLs(t *testing.T) {
	cases := []struct {
		d      Dialect
		tenant string
		want   Preset
	}{
		{Microsoft, "", Preset{AuthURL: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
			TokenURL: "https://login.microsoftonline.com/common/oauth2/v2.0/token", DeviceURL: "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
			UserinfoURL: "https://graph.microsoft.com/oidc/userinfo"}},
		{Microsoft, "contoso.onmicrosoft.com", Preset{AuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
			TokenURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token", DeviceURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
			UserinfoURL: "https://graph.microsoft.com/oidc/userinfo"}},
		{Okta, "", Preset{AuthURL: "https:///oauth2/default/v1/authorize", TokenURL: "https:///oauth2/default/v1/token",
			DeviceURL: "https:///oauth2/default/v1/device/authorize", NeedsTenant: true, ReuseGrace: 30 * time.Second,
			RevocationURL: "https:///oauth2/default/v1/revoke", UserinfoURL: "https:///oauth2/default/v1/userinfo"}},
		{Okta, "example.okta.com", Preset{AuthURL: "https://example.okta.com/oauth2/default/v1/authorize", TokenURL: "https://example.okta.com/oauth2/default/v1/token",
			DeviceURL: "https://example.okta.com/oauth2/default/v1/device/authorize", ReuseGrace: 30 * time.Second,
			RevocationURL: "https://example.okta.com/oauth2/default/v1/revoke", UserinfoURL: "https://example.okta.com/oauth2/default/v1/userinfo"}},
		{Auth0, "example.eu.auth0.com", Preset{AuthURL: "https://example.eu.auth0.com/authorize", TokenURL: "https://example.eu.auth0.com/oauth/token",
			DeviceURL:     "https://example.eu.auth0.com/oauth/device/code",
			RevocationURL: "https://example.eu.auth0.com/oauth/revoke", UserinfoURL: "https://example.eu.auth0.com/userinfo"}},
		{Google, "", Preset{AuthURL: "https://accounts.google.com/o/oauth2/v2/auth", TokenURL: "https://oauth2.googleapis.com/token",
			DeviceURL:     "https://oauth2.googleapis.com/device/code",
			RevocationURL: "https://oauth2.googleapis.com/revoke", UserinfoURL: "https://openidconnect.googleapis.com/v1/userinfo"}},
		{GitHub, "", Preset{AuthURL: "https://github.com/login/oauth/authorize", TokenURL: "https://github.com/login/oauth/access_token",
			DeviceURL: "https://github.com/login/device/code", UserinfoURL: "https://api.github.com/user"}},
		{Xero, "", Preset{AuthURL: "https://login.xero.com/identity/connect/authorize", TokenURL: "https://identity.xero.com/connect/token", ReuseGrace: 30 * time.Minute,
			RevocationURL: "https://identity.xero.com/connect/revocation"}},
		{OAuth2, "", Preset{}},
	}
	for _, c := range cases {
		t.Run(string(c.d)+" "+c.tenant, func(t *testing.T) {
			if got := c.d.Preset(c.tenant); got != c.want {
				t.Fatalf("Preset = %+v, want %+v", got, c.want)
			}
		})
	}
}
