package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func revoke(t *testing.T, e *Endpoint, token string, hint TokenTypeHint) error {
	t.Helper()
	c, ctx := testClient(t)
	return c.RevokeToken(ctx, e, token, hint)
}

// TestRevokeTokenRequest: RFC 7009 §2.1: a form POST of token and
// token_type_hint to the revocation URL, with the client authentication the
// token endpoint gets, and nothing of the token request's extras.
func TestRevokeTokenRequest(t *testing.T) {
	srv, rec := serve(t, 200, "", "")
	cases := []struct {
		name string
		e    Endpoint
		hint TokenTypeHint
		// want: the form besides token; basic: HTTP Basic expected.
		want  url.Values
		basic bool
	}{
		{"basic", Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", AuthStyle: AuthBasic}, HintRefreshToken,
			url.Values{"token_type_hint": {"refresh_token"}}, true},
		{"body", Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", AuthStyle: AuthBody}, HintAccessToken,
			url.Values{"token_type_hint": {"access_token"}, "client_id": {"app"}, "client_secret": {"sec"}}, false},
		{"none: a public client names itself", Endpoint{Dialect: OAuth2, ClientID: "app"}, HintRefreshToken,
			url.Values{"token_type_hint": {"refresh_token"}, "client_id": {"app"}}, false},
		{"no hint", Endpoint{Dialect: Google, ClientID: "app", ClientSecret: "sec"}, "",
			url.Values{"client_id": {"app"}, "client_secret": {"sec"}}, false},
		{"a JSON token endpoint still revokes by form", Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", AuthStyle: AuthBody, Encoding: EncodeJSON},
			HintRefreshToken, url.Values{"token_type_hint": {"refresh_token"}, "client_id": {"app"}, "client_secret": {"sec"}}, false},
		{"extra token parameters stay off", Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", AuthStyle: AuthBody,
			ExtraParams: map[string]string{"resource": "https://api.example"}, Scopes: []string{"read"}, Audience: "aud"},
			HintRefreshToken, url.Values{"token_type_hint": {"refresh_token"}, "client_id": {"app"}, "client_secret": {"sec"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.e
			e.RevocationURL = srv.URL + "/revoke"
			if err := revoke(t, &e, "rt-1", c.hint); err != nil {
				t.Fatalf("RevokeToken: got %v, want nil", err)
			}
			if rec.method != http.MethodPost || rec.path != "/revoke" || rec.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("request: got %s %s (%s), want POST /revoke (application/x-www-form-urlencoded)", rec.method, rec.path, rec.contentType)
			}
			form, _ := url.ParseQuery(rec.body)
			want := url.Values{"token": {"rt-1"}}
			for k, v := range c.want {
				want[k] = v
			}
			if form.Encode() != want.Encode() {
				t.Errorf("form: got %s, want %s", form.Encode(), want.Encode())
			}
			if got := strings.HasPrefix(rec.auth, "Basic "); got != c.basic {
				t.Errorf("Authorization: got %q, want Basic %v", rec.auth, c.basic)
			}
		})
	}
}

// TestRevokeTokenPrivateKeyJWT: a client with a key authenticates with a
// fresh client assertion whose audience is the token endpoint, as at the
// token endpoint (RFC 7523 §3 lets a server take its token URL as its
// identity).
func TestRevokeTokenPrivateKeyJWT(t *testing.T) {
	srv, rec := serve(t, 200, "", "")
	e := Endpoint{Dialect: OAuth2, ClientID: "client-7", TokenURL: srv.URL + "/token", RevocationURL: srv.URL + "/revoke",
		Key: &SigningKey{Signer: sigRSA, KeyID: "k1"}, Now: sigClock}
	if err := revoke(t, &e, "rt-1", HintRefreshToken); err != nil {
		t.Fatalf("RevokeToken: got %v, want nil", err)
	}
	form, _ := url.ParseQuery(rec.body)
	if rec.auth != "" || form.Has("client_secret") || form.Get("client_assertion_type") != clientAssertionType || form.Get("token") != "rt-1" {
		t.Fatalf("request: got Authorization %q, form %v; want a client assertion and the token, no secret", rec.auth, form)
	}
	_, claims := verifiedJWT(t, form.Get("client_assertion"), &sigRSA.PublicKey, e.SigningAlgorithm())
	if claims["iss"] != "client-7" || claims["sub"] != "client-7" || claims["aud"] != srv.URL+"/token" {
		t.Errorf("claims: got %v, want iss = sub = client-7, aud = the token URL", claims)
	}
}

// TestRevokeTokenAnswers: a 2xx is revoked (RFC 7009 §2.2, an unknown token
// included); errors are classified like a token request's.
func TestRevokeTokenAnswers(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		retryAfter  string
		class       Class // 0: success
		code        string
		retry       time.Duration
	}{
		{"200 empty", 200, "", "", "", 0, "", 0},
		{"200 JSON", 200, "application/json", `{}`, "", 0, "", 0},
		{"204", 204, "", "", "", 0, "", 0},
		{"a gateway's login page in a 200", 200, "text/html", "<html>sign in</html>", "", Temporary, "", 0},
		{"invalid_client", 401, "application/json", `{"error":"invalid_client"}`, "", Refused, "invalid_client", 0},
		{"unsupported_token_type", 400, "application/json", `{"error":"unsupported_token_type"}`, "", Refused, "unsupported_token_type", 0},
		{"503 with Retry-After", 503, "application/json", `{"error":"temporarily_unavailable"}`, "7", Temporary, "temporarily_unavailable", 7 * time.Second},
		{"503 without a body", 503, "text/plain", "", "", Temporary, "", 0},
		{"500 HTML", 500, "text/html", "<h1>oops</h1>", "", Temporary, "", 0},
		{"a redirect", 302, "", "", "", Refused, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				if c.status == 302 {
					w.Header().Set("Location", "https://elsewhere.example/revoke")
				}
				if c.contentType != "" {
					w.Header().Set("Content-Type", c.contentType)
				}
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			e := Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", RevocationURL: srv.URL}
			err := revoke(t, &e, "rt-1", HintRefreshToken)
			if c.class == 0 {
				if err != nil {
					t.Fatalf("RevokeToken: got %v, want nil", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("RevokeToken: got %v, want an *Error", err)
			}
			if pe.Class != c.class || pe.Code != c.code || pe.RetryAfter != c.retry || pe.Status != c.status {
				t.Errorf("error: got class %s, code %q, retry %s, status %d; want %s, %q, %s, %d",
					pe.Class, pe.Code, pe.RetryAfter, pe.Status, c.class, c.code, c.retry, c.status)
			}
		})
	}
}

// TestRevokeTokenErrorsCarryNoSecret: a provider that quotes the whole
// request (body and Authorization header) in its error shows neither the
// token nor the client secret, in any form a provider may echo them.
func TestRevokeTokenErrorsCarryNoSecret(t *testing.T) {
	const id, token = "app id", "rt/to+ken&é=1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b, _ := json.Marshal(map[string]string{"error": "invalid_request", "error_description": r.Header.Get("Authorization") + " " + string(body)})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write(b)
	}))
	defer srv.Close()
	for _, style := range []AuthStyle{AuthBasic, AuthBody} {
		t.Run(string(style), func(t *testing.T) {
			e := Endpoint{Dialect: OAuth2, ClientID: id, ClientSecret: nasty, AuthStyle: style, RevocationURL: srv.URL}
			err := revoke(t, &e, token, HintRefreshToken)
			if err == nil {
				t.Fatal("RevokeToken: got nil, want the provider's error")
			}
			msg := err.Error()
			if names := leaked(msg, echoForms(id, nasty)); len(names) > 0 {
				t.Errorf("error %q: shows the client secret as %v, want it redacted", msg, names)
			}
			if names := leaked(msg, echoForms("", token)); len(names) > 0 {
				t.Errorf("error %q: shows the token as %v, want it redacted", msg, names)
			}
			if !strings.Contains(msg, redacted) {
				t.Errorf("error %q: want the redaction marker", msg)
			}
		})
	}
}

// TestConnectionURLs: the configured revocation and userinfo URLs win; a
// preset's are used where its provider documents them and they need no
// tenant; otherwise ErrNoRevocationEndpoint and ErrNoAccountEndpoint, before
// anything is sent.
func TestConnectionURLs(t *testing.T) {
	cases := []struct {
		name                string
		e                   Endpoint
		revocation, account string
	}{
		{"configured", Endpoint{Dialect: Google, RevocationURL: "https://idp.example/revoke", UserinfoURL: "https://idp.example/userinfo"},
			"https://idp.example/revoke", "https://idp.example/userinfo"},
		{"google", Endpoint{Dialect: Google}, "https://oauth2.googleapis.com/revoke", "https://openidconnect.googleapis.com/v1/userinfo"},
		{"salesforce", Endpoint{Dialect: Salesforce}, "https://login.salesforce.com/services/oauth2/revoke", "https://login.salesforce.com/services/oauth2/userinfo"},
		{"box documents revocation only", Endpoint{Dialect: Box}, "https://api.box.com/oauth2/revoke", ""},
		{"microsoft documents userinfo only", Endpoint{Dialect: Microsoft}, "", "https://graph.microsoft.com/oidc/userinfo"},
		{"github: /user, and no RFC 7009 revocation", Endpoint{Dialect: GitHub}, "", "https://api.github.com/user"},
		{"okta and auth0 need their tenant filled in", Endpoint{Dialect: Auth0}, "", ""},
		{"oauth2 without either", Endpoint{Dialect: OAuth2}, "", ""},
	}
	client := &Client{HTTP: http.DefaultClient}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.e.EffectiveRevocationURL(); got != c.revocation {
				t.Errorf("EffectiveRevocationURL: got %q, want %q", got, c.revocation)
			}
			if got := c.e.EffectiveUserinfoURL(); got != c.account {
				t.Errorf("EffectiveUserinfoURL: got %q, want %q", got, c.account)
			}
			// Only where nothing would be sent: tests never leave loopback.
			if c.revocation == "" {
				if err := client.RevokeToken(context.Background(), &c.e, "rt", HintRefreshToken); !errors.Is(err, ErrNoRevocationEndpoint) {
					t.Errorf("RevokeToken: got %v, want ErrNoRevocationEndpoint", err)
				}
			}
			if c.account == "" {
				if _, err := client.Account(context.Background(), &c.e, "at"); !errors.Is(err, ErrNoAccountEndpoint) {
					t.Errorf("Account: got %v, want ErrNoAccountEndpoint", err)
				}
			}
		})
	}
}
