package provider

import (
	"context"
	"encoding/base64"
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

func TestParseResponse(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        *Token
		wantErr     string
	}{
		{name: "rfc6749", status: 200, contentType: "application/json",
			body: `{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}`,
			want: &Token{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt", ExpiresIn: time.Hour, Scopes: []string{"a", "b"}}},
		{name: "endorsed string expiry and scope array", status: 200, contentType: "application/json; charset=utf-8",
			body: `{"is_error":false,"access_token":"at","token_type":"Bearer","expires_in":"1209600","scope":["all:read","all:write"]}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 1209600 * time.Second, Scopes: []string{"all:read", "all:write"}}},
		{name: "no expiry, no type", status: 200, contentType: "application/json", body: `{"access_token":"at","extra":{"x":1}}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer"}},
		{name: "float expiry", status: 200, contentType: "application/json", body: `{"access_token":"at","expires_in":59.9}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 59 * time.Second}},
		{name: "form body", status: 200, contentType: "application/x-www-form-urlencoded",
			body: "access_token=at&token_type=bearer&expires_in=60", want: &Token{AccessToken: "at", TokenType: "bearer", ExpiresIn: time.Minute}},
		{name: "no content type, JSON body", status: 200, body: `{"access_token":"at"}`, want: &Token{AccessToken: "at", TokenType: "Bearer"}},
		{name: "missing access token", status: 200, contentType: "application/json", body: `{"token_type":"bearer"}`, wantErr: "no access_token"},
		{name: "html 200", status: 200, contentType: "text/html", body: "<html>login</html>", wantErr: "HTML page"},
		{name: "html without content type", status: 502, body: "  <!DOCTYPE html>", wantErr: "HTML page"},
		{name: "not json", status: 200, contentType: "application/json", body: `{"access_token":`, wantErr: "not a usable token response"},
		{name: "access token wrong type", status: 200, contentType: "application/json", body: `{"access_token":42}`, wantErr: "not a usable token response"},
		{name: "expiry wrong type", status: 200, contentType: "application/json", body: `{"access_token":"at","expires_in":{"s":1}}`, wantErr: "not a usable"},
		{name: "expiry not numeric", status: 200, contentType: "application/json", body: `{"access_token":"at","expires_in":"soon"}`, wantErr: "not a usable"},
		{name: "rfc error", status: 400, contentType: "application/json", body: `{"error":"invalid_client","error_description":"bad secret"}`,
			wantErr: "provider returned HTTP 400: invalid_client: bad secret"},
		{name: "error in a 200", status: 200, contentType: "application/json", body: `{"error":"invalid_scope"}`, wantErr: "invalid_scope"},
		{name: "endorsed is_error", status: 200, contentType: "application/json", body: `{"is_error":true,"message":"nope"}`, wantErr: "nope"},
		{name: "apivideo problem", status: 401, contentType: "application/problem+json",
			body:    `{"type":"https://docs.api.video/reference/authentication-invalid-api-key","title":"The API key is invalid.","status":401}`,
			wantErr: "authentication-invalid-api-key: The API key is invalid."},
		{name: "odd error field type", status: 400, contentType: "application/json", body: `{"error":{"code":7},"message":"structured"}`, wantErr: "structured"},
		{name: "error body not json", status: 500, contentType: "application/json", body: `oops`, wantErr: "error response is not JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseResponse(tc.status, tc.contentType, []byte(tc.body), false)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("error %T is not *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, tc.want); g != w {
				t.Fatalf("token = %s, want %s", g, w)
			}
		})
	}
}

func TestInvalidGrantClassification(t *testing.T) {
	cases := []struct {
		status  int
		body    string
		refresh bool
		want    bool
	}{
		{400, `{"error":"invalid_grant"}`, true, true},
		{400, `{"error":"invalid_grant"}`, false, true},
		{400, `{"type":"x/invalid-refresh-token","title":"The refresh token is either expired or invalid.","status":400}`, true, true},
		{401, `{"error":"invalid_client"}`, true, false},
		{503, `{"error":"temporarily_unavailable"}`, true, false},
		{400, `{"title":"bad"}`, false, false},
	}
	for _, tc := range cases {
		_, err := parseResponse(tc.status, "application/json", []byte(tc.body), tc.refresh)
		var pe *Error
		if !errors.As(err, &pe) || pe.InvalidGrant != tc.want {
			t.Errorf("%d %s refresh=%v: InvalidGrant=%v, want %v (err %v)", tc.status, tc.body, tc.refresh, pe != nil && pe.InvalidGrant, tc.want, err)
		}
	}
}

// recorded is what a test server saw of one token request.
type recorded struct {
	method, path, contentType, auth string
	query                           url.Values
	body                            string
}

func serve(t *testing.T, status int, contentType, body string) (*httptest.Server, *recorded) {
	t.Helper()
	rec := new(recorded)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.URL.Query(), string(b)}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

const okBody = `{"access_token":"at","expires_in":60,"refresh_token":"rt2"}`

func exchange(t *testing.T, e *Endpoint, grant Grant, rt string) (*Token, error) {
	t.Helper()
	hc, err := NewHTTPClient("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return (&Client{HTTP: hc}).Exchange(ctx, e, grant, rt)
}

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

func TestExchangeErrorsCarryNoSecret(t *testing.T) {
	srv, _ := serve(t, 400, "application/json", `{"error":"invalid_client","error_description":"secret s%26cret or s&cret or rt1 is wrong"}`)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "s&cret"}
	_, err := exchange(t, e, GrantRefreshToken, "rt1")
	if err == nil || strings.Contains(err.Error(), "s&cret") || strings.Contains(err.Error(), "s%26cret") || strings.Contains(err.Error(), "rt1") {
		t.Fatalf("error leaks a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("error = %v", err)
	}
}

func TestExchangeLimitsAndTransport(t *testing.T) {
	huge := `{"access_token":"` + strings.Repeat("a", MaxBody) + `"}`
	srv, _ := serve(t, 200, "application/json", huge)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "s"}
	if _, err := exchange(t, e, GrantClientCredentials, ""); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Fatalf("err = %v", err)
	}

	redirect, _ := serve(t, 302, "text/plain", "")
	e.TokenURL = redirect.URL
	if _, err := exchange(t, e, GrantClientCredentials, ""); err == nil || !strings.Contains(err.Error(), "redirected") {
		t.Fatalf("err = %v", err)
	}

	limited, _ := serve(t, 429, "application/json", `{"error":"slow_down"}`)
	e.TokenURL = limited.URL
	_, err := exchange(t, e, GrantClientCredentials, "")
	var pe *Error
	if !errors.As(err, &pe) || !pe.Temporary {
		t.Fatalf("err = %#v", err)
	}

	// A connection refused never carried the request: nothing can be spent.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	e.TokenURL = closed.URL + "/token?client_secret=leak"
	_, err = exchange(t, e, GrantRefreshToken, "rt1")
	if !errors.As(err, &pe) || pe.MaybeConsumed || !pe.Temporary || strings.Contains(err.Error(), "leak") {
		t.Fatalf("err = %#v (%v)", err, err)
	}

	// A connection dropped after the request was written may have spent it.
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer drop.Close()
	e.TokenURL = drop.URL
	_, err = exchange(t, e, GrantRefreshToken, "rt1")
	if !errors.As(err, &pe) || !pe.MaybeConsumed {
		t.Fatalf("err = %#v (%v)", err, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Endpoint{Dialect: OAuth2, TokenURL: "https://idp.example/token", ClientID: "id", ClientSecret: "s"}
	cases := map[string]struct {
		change  func(*Endpoint)
		seed    bool
		wantErr string
	}{
		"ok":                 {change: func(*Endpoint) {}},
		"loopback http":      {change: func(e *Endpoint) { e.TokenURL = "http://127.0.0.2:8080/t" }},
		"ipv6 loopback http": {change: func(e *Endpoint) { e.TokenURL = "http://[::1]:8080/t" }},
		"localhost http":     {change: func(e *Endpoint) { e.TokenURL = "http://localhost/t" }},
		"remote http":        {change: func(e *Endpoint) { e.TokenURL = "http://idp.example/t" }, wantErr: "must use https"},
		"ftp":                {change: func(e *Endpoint) { e.TokenURL = "ftp://idp.example/t" }, wantErr: "scheme"},
		"no host":            {change: func(e *Endpoint) { e.TokenURL = "https:///t" }, wantErr: "no host"},
		"userinfo":           {change: func(e *Endpoint) { e.TokenURL = "https://u:p@idp.example/t" }, wantErr: "credentials in the URL"},
		"no url":             {change: func(e *Endpoint) { e.TokenURL = "" }, wantErr: "token_url is required"},
		"bad refresh url":    {change: func(e *Endpoint) { e.RefreshURL = "http://x.example" }, wantErr: "refresh_url"},
		"unknown dialect":    {change: func(e *Endpoint) { e.Dialect = "nope" }, wantErr: "unknown provider"},
		"unknown auth":       {change: func(e *Endpoint) { e.AuthStyle = "header" }, wantErr: "auth_style"},
		"unknown encoding":   {change: func(e *Endpoint) { e.Encoding = "xml" }, wantErr: "encoding"},
		"reserved extra":     {change: func(e *Endpoint) { e.ExtraParams = map[string]string{"grant_type": "password"} }, wantErr: "extra_params"},
		"no secret":          {change: func(e *Endpoint) { e.ClientSecret = "" }, wantErr: "needs client_secret"},
		"seed only":          {change: func(e *Endpoint) { e.ClientSecret = "" }, seed: true},
		"no client id":       {change: func(e *Endpoint) { e.ClientID = "" }, wantErr: "needs client_id"},
		"apivideo no key":    {change: func(e *Endpoint) { e.Dialect = APIVideo }, wantErr: "needs api_key"},
		"apivideo seed only": {change: func(e *Endpoint) { e.Dialect = APIVideo }, seed: true},
		"apivideo with key":  {change: func(e *Endpoint) { e.Dialect, e.APIKey = APIVideo, "k" }},
		"echo360 seed no id": {change: func(e *Endpoint) { e.Dialect, e.ClientID, e.ClientSecret = Echo360, "", "" }, seed: true, wantErr: "needs client_id"},
	}
	for name, tc := range cases {
		e := ok
		tc.change(&e)
		err := e.Validate(tc.seed)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.wantErr)
		}
	}
}

func TestEffectiveRefreshURL(t *testing.T) {
	e := Endpoint{Dialect: APIVideo, TokenURL: "https://ws.api.video/auth/api-key?x=1"}
	if got := e.EffectiveRefreshURL(); got != "https://ws.api.video/auth/refresh" {
		t.Fatal(got)
	}
	e = Endpoint{Dialect: OAuth2, TokenURL: "https://idp/token"}
	if got := e.EffectiveRefreshURL(); got != "https://idp/token" {
		t.Fatal(got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-3": 0, "99999": time.Hour, "junk": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
