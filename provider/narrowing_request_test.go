package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// send sends in to e and returns the error (the token is the test server's).
func sendRequest(t *testing.T, e *Endpoint, in TokenRequest) error {
	t.Helper()
	c, ctx := testClient(t)
	_, err := c.Send(ctx, e, in)
	return err
}

// TestNarrowedRequests: what each grant sends for a narrowing, form and JSON.
func TestNarrowedRequests(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", okBody)
	base := Endpoint{Dialect: OAuth2, TokenURL: srv.URL + "/token", ClientID: "id", ClientSecret: "cl1ent-s3cret", AuthStyle: AuthBody,
		Scopes: []string{"read", "write", "admin"}, Audience: "https://configured.example"}
	cases := []struct {
		name string
		e    func(e *Endpoint)
		in   TokenRequest
		want url.Values // the parameters besides client_id and client_secret
	}{
		{
			name: "client credentials without narrowing: the configured scopes and audience",
			in:   TokenRequest{Grant: GrantClientCredentials},
			want: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write admin"}, "audience": {"https://configured.example"}},
		},
		{
			name: "client credentials narrowed: scope space-joined (RFC 6749 §3.3), sorted; one audience; resources repeated (RFC 8707 §2.1)",
			in: TokenRequest{Grant: GrantClientCredentials, Narrowing: &Narrowing{Scopes: []string{"write", "read", "read"},
				Audiences: []string{"https://narrow.example"}, Resources: []string{"https://b.example/", "HTTPS://A.example:443/"}}},
			want: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}, "audience": {"https://narrow.example"},
				"resource": {"https://a.example/", "https://b.example/"}},
		},
		{
			name: "a narrowing's resource replaces a configured extra resource",
			e: func(e *Endpoint) {
				e.ExtraParams = map[string]string{"resource": "https://extra.example", "tenant": "t1"}
			},
			in: TokenRequest{Grant: GrantClientCredentials, Narrowing: &Narrowing{Resources: []string{"https://narrow.example"}}},
			want: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write admin"}, "audience": {"https://configured.example"},
				"resource": {"https://narrow.example"}, "tenant": {"t1"}},
		},
		{
			name: "an empty narrowing narrows nothing",
			in:   TokenRequest{Grant: GrantClientCredentials, Narrowing: &Narrowing{}},
			want: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write admin"}, "audience": {"https://configured.example"}},
		},
		{
			name: "refresh without narrowing sends no scope (RFC 6749 §6: the chain's)",
			in:   TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt1"},
			want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt1"}},
		},
		{
			name: "refresh narrowed: scope (RFC 6749 §6) and resource (RFC 8707 §2.2)",
			in: TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt1",
				Narrowing: &Narrowing{Scopes: []string{"read"}, Resources: []string{"https://a.example"}}},
			want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt1"}, "scope": {"read"}, "resource": {"https://a.example"}},
		},
		{
			name: "Microsoft refresh for another resource keeps offline_access",
			e:    func(e *Endpoint) { e.Dialect, e.Audience = Microsoft, "" },
			in: TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt1",
				Narrowing: &Narrowing{Scopes: []string{"https://management.azure.com/.default"}}},
			want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt1"},
				"scope": {"https://management.azure.com/.default offline_access"}},
		},
		{
			name: "Microsoft refresh that names offline_access sends it once",
			e:    func(e *Endpoint) { e.Dialect, e.Audience = Microsoft, "" },
			in: TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt1",
				Narrowing: &Narrowing{Scopes: []string{"offline_access", "https://graph.microsoft.com/.default"}}},
			want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt1"},
				"scope": {"https://graph.microsoft.com/.default offline_access"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			if tc.e != nil {
				tc.e(&e)
			}
			if err := sendRequest(t, &e, tc.in); err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			got, _ := url.ParseQuery(rec.body)
			got.Del("client_id")
			got.Del("client_secret")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("form:\n got %v\nwant %v", got, tc.want)
			}
		})
	}

	t.Run("JSON body: one resource a string, several an array", func(t *testing.T) {
		e := base
		e.Dialect, e.Encoding = OAuth2JSON, EncodeJSON
		for _, tc := range []struct {
			resources []string
			want      any
		}{
			{[]string{"https://a.example"}, "https://a.example"},
			{[]string{"https://a.example", "https://b.example"}, []any{"https://a.example", "https://b.example"}},
		} {
			if err := sendRequest(t, &e, TokenRequest{Grant: GrantClientCredentials, Narrowing: &Narrowing{Resources: tc.resources}}); err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(rec.body), &body); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(body["resource"], tc.want) {
				t.Errorf("resource: got %#v, want %#v; body %s", body["resource"], tc.want, rec.body)
			}
		}
	})

	t.Run("the JWT-bearer grant sends the narrowed scopes", func(t *testing.T) {
		e := base
		e.Grant, e.Key, e.Now, e.AuthStyle = GrantJWTBearer, &SigningKey{Signer: sigRSA}, sigClock, ""
		if err := sendRequest(t, &e, TokenRequest{Grant: GrantJWTBearer, Narrowing: &Narrowing{Scopes: []string{"read"}}}); err != nil {
			t.Fatal(err)
		}
		form, _ := url.ParseQuery(rec.body)
		if got := form.Get("scope"); got != "read" {
			t.Errorf("scope: got %q, want read", got)
		}
	})
}

// TestNarrowingRefusedBeforeSending: a narrowing a grant cannot carry, or
// that is not usable, fails without a request, rather than being dropped.
func TestNarrowingRefusedBeforeSending(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", okBody)
	oauth2 := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "cl1ent-s3cret"}
	video := &Endpoint{Dialect: APIVideo, TokenURL: srv.URL, APIKey: "k"}
	cases := []struct {
		name    string
		e       *Endpoint
		in      TokenRequest
		wantErr string
	}{
		{"client credentials with two audiences", oauth2, TokenRequest{Grant: GrantClientCredentials,
			Narrowing: &Narrowing{Audiences: []string{"a", "b"}}}, "the client_credentials grant of provider oauth2 cannot narrow more than one audience"},
		{"client credentials with repositories", oauth2, TokenRequest{Grant: GrantClientCredentials,
			Narrowing: &Narrowing{Repositories: []string{"r"}}}, "cannot narrow repositories"},
		{"refresh with an audience", oauth2, TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt",
			Narrowing: &Narrowing{Audiences: []string{"a"}}}, "the refresh_token grant of provider oauth2 cannot narrow audiences"},
		{"refresh with permissions", oauth2, TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt",
			Narrowing: &Narrowing{Permissions: map[string]string{"contents": "read"}}}, "cannot narrow permissions"},
		{"api.video with scopes", video, TokenRequest{Grant: GrantAPIKey, Narrowing: &Narrowing{Scopes: []string{"x"}}}, "cannot narrow scopes"},
		{"a resource with a fragment", oauth2, TokenRequest{Grant: GrantClientCredentials,
			Narrowing: &Narrowing{Resources: []string{"https://a.example/#f"}}}, `narrowing: resource "https://a.example/#f": must not include a fragment`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			*rec = recorded{}
			err := sendRequest(t, tc.e, tc.in)
			var pe *Error
			if !errors.As(err, &pe) || pe.Class != Refused || pe.Status != 0 || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Send: got %v, want a refusal before sending containing %q", err, tc.wantErr)
			}
			if rec.method != "" {
				t.Errorf("a request was sent: %s %s", rec.method, rec.body)
			}
		})
	}
}

// TestNarrowedInstallationToken: a narrowing's repositories (names and ids
// together) and permissions replace the installation's configured ones in
// the access_tokens body (GitHub REST "Create an installation access token
// for an app").
func TestNarrowedInstallationToken(t *testing.T) {
	cases := []struct {
		name string
		n    *Narrowing
		want string
	}{
		{"none: the configured narrowing", nil, `{"permissions":{"contents":"read"},"repositories":["repo-1"],"repository_ids":[5]}`},
		{"repository names replace names and ids", &Narrowing{Repositories: []string{"b", "a"}},
			`{"permissions":{"contents":"read"},"repositories":["a","b"]}`},
		{"repository ids replace names and ids", &Narrowing{RepositoryIDs: []int64{9}},
			`{"permissions":{"contents":"read"},"repository_ids":[9]}`},
		{"permissions replace permissions", &Narrowing{Permissions: map[string]string{"issues": "read", "metadata": "read"}},
			`{"permissions":{"issues":"read","metadata":"read"},"repositories":["repo-1"],"repository_ids":[5]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, e, c := startGitHub(t, 0)
			e.Installation.InstallationID = "42"
			if _, err := c.Send(context.Background(), e, TokenRequest{Grant: GrantInstallationToken, Narrowing: tc.n}); err != nil {
				t.Fatalf("Send: got %v, want a token", err)
			}
			if got := g.bodies[len(g.bodies)-1]; got != tc.want {
				t.Errorf("access_tokens body:\n got %s\nwant %s", got, tc.want)
			}
			if e.Installation.Repositories[0] != "repo-1" || e.Installation.Permissions["contents"] != "read" {
				t.Errorf("the endpoint's installation changed: %+v", e.Installation)
			}
		})
	}
	t.Run("scopes are refused", func(t *testing.T) {
		_, e, c := startGitHub(t, 0)
		e.Installation.InstallationID = "42"
		_, err := c.Send(context.Background(), e, TokenRequest{Grant: GrantInstallationToken, Narrowing: &Narrowing{Scopes: []string{"repo"}}})
		if err == nil || !strings.Contains(err.Error(), "cannot narrow scopes") {
			t.Fatalf("Send: got %v, want a refusal naming scopes", err)
		}
	})
}

// TestNarrowingRefusedByTheProvider: which refusals say the narrowing was
// refused (Error.NarrowingRefused), leaving the chain as it was.
func TestNarrowingRefusedByTheProvider(t *testing.T) {
	narrowed := &Narrowing{Scopes: []string{"read"}}
	cases := []struct {
		name    string
		dialect Dialect
		status  int
		body    string
		n       *Narrowing
		want    bool
	}{
		{"invalid_scope (RFC 6749 §5.2)", OAuth2, 400, `{"error":"invalid_scope"}`, narrowed, true},
		{"invalid_target (RFC 8707 §2)", OAuth2, 400, `{"error":"invalid_target"}`, narrowed, true},
		{"invalid_scope without a narrowing: the configuration's", OAuth2, 400, `{"error":"invalid_scope"}`, nil, false},
		{"invalid_grant: the refresh token", OAuth2, 400, `{"error":"invalid_grant"}`, narrowed, false},
		{"a 503 is temporary", OAuth2, 503, `{"error":"temporarily_unavailable"}`, narrowed, false},
		{"Microsoft's missing consent (AADSTS65001)", Microsoft, 400,
			`{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented to use the application"}`, narrowed, true},
		{"Microsoft's other invalid_grant", Microsoft, 400,
			`{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired"}`, narrowed, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := serve(t, tc.status, "application/json", tc.body)
			e := &Endpoint{Dialect: tc.dialect, TokenURL: srv.URL, ClientID: "id", ClientSecret: "cl1ent-s3cret"}
			err := sendRequest(t, e, TokenRequest{Grant: GrantRefreshToken, RefreshToken: "rt", Narrowing: tc.n})
			var pe *Error
			if !errors.As(err, &pe) || pe.NarrowingRefused != tc.want {
				t.Fatalf("Send: got %#v, want an *Error with NarrowingRefused %v", err, tc.want)
			}
		})
	}
	t.Run("GitHub's 422 to an installation token", func(t *testing.T) {
		for _, tc := range []struct {
			name, installation string
			n                  *Narrowing
			want               bool
		}{
			{"narrowed", "422", &Narrowing{Repositories: []string{"x"}}, true},
			{"not narrowed: the configuration's", "422", nil, false},
			{"a 401 narrowed: the app's credentials", "7", &Narrowing{Repositories: []string{"x"}}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, e, c := startGitHub(t, 0)
				e.Installation.InstallationID = tc.installation
				_, err := c.Send(context.Background(), e, TokenRequest{Grant: GrantInstallationToken, Narrowing: tc.n})
				var pe *Error
				if !errors.As(err, &pe) || pe.NarrowingRefused != tc.want {
					t.Fatalf("Send: got %#v, want an *Error with NarrowingRefused %v", err, tc.want)
				}
			})
		}
	})
}
