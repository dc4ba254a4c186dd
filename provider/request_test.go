package provider

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestRequestsPerDialect(t *testing.T) {
	srv, rec := serve(t, 200, "application/json", okBody)
	base := Endpoint{TokenURL: srv.URL + "/token", ClientID: "id:1", ClientSecret: "s&cret", Scopes: []string{"a", "b"}}

	t.Run("oauth2 basic form", func(t *testing.T) {
		e := base
		e.Dialect = OAuth2
		e.ExtraParams = map[string]string{"resource": "r"}
		if _, err := exchange(t, &e, GrantClientCredentials, ""); err != nil {
			t.Fatal(err)
		}
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape("id:1")+":"+url.QueryEscape("s&cret")))
		if rec.auth != want || rec.contentType != "application/x-www-form-urlencoded" {
			t.Fatalf("auth %q content type %q", rec.auth, rec.contentType)
		}
		form, _ := url.ParseQuery(rec.body)
		if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "a b" || form.Get("resource") != "r" || form.Has("client_secret") {
			t.Fatalf("form = %v", form)
		}
	})
	t.Run("oauth2 refresh with body auth", func(t *testing.T) {
		e := base
		e.Dialect, e.AuthStyle = OAuth2, AuthBody
		if _, err := exchange(t, &e, GrantRefreshToken, "rt1"); err != nil {
			t.Fatal(err)
		}
		form, _ := url.ParseQuery(rec.body)
		if rec.auth != "" || form.Get("grant_type") != "refresh_token" || form.Get("refresh_token") != "rt1" ||
			form.Get("client_id") != "id:1" || form.Get("client_secret") != "s&cret" || form.Has("scope") {
			t.Fatalf("form = %v auth %q", form, rec.auth)
		}
	})
	t.Run("microsoft refresh sends the configured scopes with offline_access", func(t *testing.T) {
		e := base
		e.Dialect, e.TokenURL = Microsoft, srv.URL+"/token"
		if _, err := exchange(t, &e, GrantRefreshToken, "rt1"); err != nil {
			t.Fatal(err)
		}
		form, _ := url.ParseQuery(rec.body)
		if got, want := form.Get("scope"), "a b offline_access"; got != want || form.Get("refresh_token") != "rt1" {
			t.Fatalf("scope = %q, want %q (Microsoft refuses a refresh without scope, AADSTS90014); form = %v", got, want, form)
		}
	})
	t.Run("oauth2_json", func(t *testing.T) {
		e := base
		e.Dialect, e.Scopes = OAuth2JSON, nil
		if _, err := exchange(t, &e, GrantClientCredentials, ""); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(rec.body), &body); err != nil || rec.contentType != "application/json" || rec.method != "POST" {
			t.Fatalf("body %q: %v", rec.body, err)
		}
		if body["client_id"] != "id:1" || body["client_secret"] != "s&cret" || body["grant_type"] != "client_credentials" || len(body) != 3 {
			t.Fatalf("body = %v", body)
		}
	})
	t.Run("echo360 refresh sends no secret", func(t *testing.T) {
		e := base
		e.Dialect = Echo360
		if _, err := exchange(t, &e, GrantRefreshToken, "rt1"); err != nil {
			t.Fatal(err)
		}
		form, _ := url.ParseQuery(rec.body)
		if form.Has("client_secret") || rec.auth != "" || form.Get("client_id") != "id:1" || form.Get("refresh_token") != "rt1" {
			t.Fatalf("form = %v auth %q", form, rec.auth)
		}
	})
	t.Run("echo360 query encoding", func(t *testing.T) {
		e := base
		e.Dialect, e.Encoding = Echo360, EncodeQuery
		if _, err := exchange(t, &e, GrantClientCredentials, ""); err != nil {
			t.Fatal(err)
		}
		if rec.body != "" || rec.query.Get("client_secret") != "s&cret" || rec.query.Get("grant_type") != "client_credentials" {
			t.Fatalf("query %v body %q", rec.query, rec.body)
		}
	})
	t.Run("endorsed json scope array", func(t *testing.T) {
		e := base
		e.Dialect, e.Encoding = Endorsed, EncodeJSON
		if _, err := exchange(t, &e, GrantClientCredentials, ""); err != nil {
			t.Fatal(err)
		}
		var body struct{ Scope []string }
		if err := json.Unmarshal([]byte(rec.body), &body); err != nil || strings.Join(body.Scope, ",") != "a,b" {
			t.Fatalf("body %q: %v", rec.body, err)
		}
	})
	t.Run("apivideo", func(t *testing.T) {
		e := Endpoint{Dialect: APIVideo, TokenURL: srv.URL + "/auth/api-key", APIKey: "key"}
		if _, err := exchange(t, &e, GrantAPIKey, ""); err != nil {
			t.Fatal(err)
		}
		if rec.path != "/auth/api-key" || rec.body != `{"apiKey":"key"}` {
			t.Fatalf("path %s body %s", rec.path, rec.body)
		}
		if _, err := exchange(t, &e, GrantRefreshToken, "rt1"); err != nil {
			t.Fatal(err)
		}
		if rec.path != "/auth/refresh" || rec.body != `{"refreshToken":"rt1"}` {
			t.Fatalf("path %s body %s", rec.path, rec.body)
		}
	})
}
