package provider

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const exchangeOK = `{"access_token":"at-narrow","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60,"scope":"read"}`

// TestTokenExchangeRequest: what RFC 8693 §2.1 asks a request to carry,
// with the endpoint's client authentication.
func TestTokenExchangeRequest(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", exchangeOK)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL + "/token", ClientID: "id", ClientSecret: "cl1ent-s3cret",
		Scopes: []string{"configured"}, Audience: "configured-audience"}
	cases := []struct {
		name string
		in   TokenRequest
		want url.Values
	}{
		{
			name: "subject only: the configured scope and audience are the base grant's, not sent",
			in:   TokenRequest{Grant: GrantTokenExchange, Exchange: &TokenExchange{SubjectToken: "subject-tok", SubjectTokenType: TokenTypeAccessToken}},
			want: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {"subject-tok"}, "subject_token_type": {TokenTypeAccessToken}},
		},
		{
			name: "actor, requested type, audiences and resources repeated, scope joined",
			in: TokenRequest{Grant: GrantTokenExchange,
				Exchange: &TokenExchange{SubjectToken: "subject-tok", SubjectTokenType: TokenTypeIDToken,
					ActorToken: "actor-tok", ActorTokenType: TokenTypeJWT, RequestedTokenType: TokenTypeAccessToken},
				Narrowing: &Narrowing{Audiences: []string{"svc-b", "svc-a"}, Resources: []string{"https://r.example"}, Scopes: []string{"write", "read"}}},
			want: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {"subject-tok"}, "subject_token_type": {TokenTypeIDToken},
				"actor_token": {"actor-tok"}, "actor_token_type": {TokenTypeJWT}, "requested_token_type": {TokenTypeAccessToken},
				"audience": {"svc-a", "svc-b"}, "resource": {"https://r.example"}, "scope": {"read write"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ctx := testClient(t)
			tok, err := c.Send(ctx, e, tc.in)
			if err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			if tok.AccessToken != "at-narrow" || tok.IssuedTokenType != TokenTypeAccessToken || tok.ExpiresIn != time.Minute {
				t.Errorf("token: got %+v", tok)
			}
			got, _ := url.ParseQuery(rec.body)
			if !strings.HasPrefix(rec.auth, "Basic ") {
				t.Errorf("client authentication: got Authorization %q, want the endpoint's HTTP Basic", rec.auth)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("form:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestTokenExchangeRefusedBeforeSending: what RFC 8693 §2.1 forbids, and
// dialects that document no token exchange.
func TestTokenExchangeRefusedBeforeSending(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", exchangeOK)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "cl1ent-s3cret"}
	subject := func(x TokenExchange) *TokenExchange {
		if x.SubjectToken == "" {
			x.SubjectToken = "subject-tok"
		}
		return &x
	}
	cases := []struct {
		name    string
		e       *Endpoint
		x       *TokenExchange
		n       *Narrowing
		wantErr string
	}{
		{"no exchange", e, nil, nil, "needs a subject_token"},
		{"no subject type", e, subject(TokenExchange{}), nil, "needs the subject_token_type"},
		{"an actor without type", e, subject(TokenExchange{SubjectTokenType: TokenTypeAccessToken, ActorToken: "actor-tok"}), nil, "needs its actor_token_type"},
		{"an actor type without actor", e, subject(TokenExchange{SubjectTokenType: TokenTypeAccessToken, ActorTokenType: TokenTypeJWT}), nil, "MUST NOT be included"},
		{"a type that is no URI", e, subject(TokenExchange{SubjectTokenType: "access_token"}), nil, `subject_token_type "access_token": a token type is a URI`},
		{"repositories", e, subject(TokenExchange{SubjectTokenType: TokenTypeAccessToken}), &Narrowing{Repositories: []string{"r"}}, "cannot narrow repositories"},
		{"a dialect without token exchange", &Endpoint{Dialect: Google, TokenURL: srv.URL, ClientID: "id"},
			subject(TokenExchange{SubjectTokenType: TokenTypeAccessToken}), nil, "provider google does not support grant urn:ietf:params:oauth:grant-type:token-exchange"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			*rec = recorded{}
			err := sendRequest(t, tc.e, TokenRequest{Grant: GrantTokenExchange, Exchange: tc.x, Narrowing: tc.n})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Send: got %v, want an error containing %q", err, tc.wantErr)
			}
			if rec.method != "" {
				t.Errorf("a request was sent: %s", rec.body)
			}
		})
	}
	for _, d := range []Dialect{OAuth2, Okta} {
		if !(&Endpoint{Dialect: d}).CanExchange() {
			t.Errorf("CanExchange(%s): got false, want true", d)
		}
	}
	if (&Endpoint{Dialect: GitHubApp}).CanExchange() {
		t.Error("CanExchange(github_app): got true, want false")
	}
}

// TestTokenExchangeAnswers: RFC 8693 §2.2.1 answers read tolerantly, and
// §2.2.2 errors classified like every other refusal.
func TestTokenExchangeAnswers(t *testing.T) {
	cases := []struct {
		name, contentType, body string
		status                  int
		requested               string
		wantIssued, wantType    string
		wantRefresh             string
		wantErr                 string // "" for a token
		wantClass               Class
		wantNarrowing           bool
	}{
		{name: "all fields", status: 200, contentType: "application/json",
			body:       `{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60,"scope":"read","refresh_token":"rt"}`,
			wantIssued: TokenTypeAccessToken, wantType: "Bearer", wantRefresh: "rt"},
		{name: "an ID token: token_type N_A", status: 200, contentType: "application/json", requested: TokenTypeIDToken,
			body:       `{"access_token":"eyJ.x.y","issued_token_type":"urn:ietf:params:oauth:token-type:id_token","token_type":"N_A"}`,
			wantIssued: TokenTypeIDToken, wantType: "N_A"},
		{name: "issued_token_type absent: the requested type", status: 200, contentType: "application/json", requested: TokenTypeJWT,
			body: `{"access_token":"at","token_type":"Bearer"}`, wantIssued: TokenTypeJWT, wantType: "Bearer"},
		{name: "issued_token_type absent, none requested: an access token", status: 200, contentType: "application/json",
			body: `{"access_token":"at"}`, wantIssued: TokenTypeAccessToken, wantType: "Bearer"},
		{name: "expires_in as a string, unknown fields", status: 200, contentType: "application/json",
			body:       `{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","expires_in":"60","x":{}}`,
			wantIssued: TokenTypeJWT, wantType: "Bearer"},
		{name: "a form-encoded answer", status: 200, contentType: "application/x-www-form-urlencoded",
			body: "access_token=at&issued_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt", wantIssued: TokenTypeJWT, wantType: "Bearer"},
		{name: "another type than requested is refused", status: 200, contentType: "application/json", requested: TokenTypeAccessToken,
			body:    `{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token"}`,
			wantErr: "issued a token of type urn:ietf:params:oauth:token-type:refresh_token where urn:ietf:params:oauth:token-type:access_token was requested", wantClass: Refused},
		{name: "issued_token_type not a string", status: 200, contentType: "application/json",
			body: `{"access_token":"at","issued_token_type":7}`, wantErr: "issued_token_type is not a string", wantClass: Refused},
		{name: "issued_token_type with a line break", status: 200, contentType: "application/json",
			body: `{"access_token":"at","issued_token_type":"urn:x\nEvil: 1"}`, wantErr: "a control character (0x0a)", wantClass: Refused},
		{name: "no access_token", status: 200, contentType: "application/json",
			body: `{"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}`, wantErr: "no access_token", wantClass: Refused},
		{name: "invalid_target (RFC 8693 §2.2.2) refuses the narrowing, not the subject", status: 400, contentType: "application/json",
			body: `{"error":"invalid_target","error_description":"audience not allowed"}`, wantErr: "invalid_target", wantClass: Refused, wantNarrowing: true},
		{name: "invalid_request (RFC 8693 §2.2.2: the subject token)", status: 400, contentType: "application/json",
			body: `{"error":"invalid_request","error_description":"subject_token is invalid"}`, wantErr: "invalid_request", wantClass: Refused},
		{name: "invalid_scope (RFC 6749 §5.2)", status: 400, contentType: "application/json",
			body: `{"error":"invalid_scope"}`, wantErr: "invalid_scope", wantClass: Refused, wantNarrowing: true},
		{name: "invalid_client (RFC 6749 §5.2)", status: 401, contentType: "application/json",
			body: `{"error":"invalid_client"}`, wantErr: "invalid_client", wantClass: Refused},
		{name: "unsupported_grant_type: no token exchange here", status: 400, contentType: "application/json",
			body: `{"error":"unsupported_grant_type"}`, wantErr: "unsupported_grant_type", wantClass: Refused},
		{name: "a 503 is temporary", status: 503, contentType: "text/plain", body: "busy", wantErr: "503", wantClass: Temporary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := serve(t, tc.status, tc.contentType, tc.body)
			e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "cl1ent-s3cret"}
			c, ctx := testClient(t)
			tok, err := c.Send(ctx, e, TokenRequest{Grant: GrantTokenExchange,
				Exchange:  &TokenExchange{SubjectToken: "subject-tok", SubjectTokenType: TokenTypeAccessToken, RequestedTokenType: tc.requested},
				Narrowing: &Narrowing{Audiences: []string{"svc"}}})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: got %v, want a token", err)
				}
				if tok.IssuedTokenType != tc.wantIssued || tok.TokenType != tc.wantType || tok.RefreshToken != tc.wantRefresh {
					t.Errorf("token: got issued %q type %q refresh %q; want %q %q %q", tok.IssuedTokenType, tok.TokenType, tok.RefreshToken,
						tc.wantIssued, tc.wantType, tc.wantRefresh)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Class != tc.wantClass || pe.NarrowingRefused != tc.wantNarrowing || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Send: got %#v (%v), want class %s, NarrowingRefused %v, containing %q", err, err, tc.wantClass, tc.wantNarrowing, tc.wantErr)
			}
		})
	}
}

// TestTokenExchangeErrorsCarryNoToken: the subject and actor tokens are
// credentials: a provider echoing them has them removed.
func TestTokenExchangeErrorsCarryNoToken(t *testing.T) {
	srv, _ := serve(t, 400, "application/json", `{"error":"invalid_request","error_description":"subject_token subj-S3CRET and actor_token act-S3CRET are bad"}`)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "cl1ent-s3cret"}
	err := sendRequest(t, e, TokenRequest{Grant: GrantTokenExchange, Exchange: &TokenExchange{
		SubjectToken: "subj-S3CRET", SubjectTokenType: TokenTypeAccessToken, ActorToken: "act-S3CRET", ActorTokenType: TokenTypeAccessToken}})
	if err == nil || strings.Contains(err.Error(), "S3CRET") || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("Send: got %v, want an error without either token", err)
	}
}
