package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// userinfoServer answers every request with status, contentType and body,
// and records the request's method, path and headers.
func userinfoServer(t *testing.T, status int, contentType, body string) (*httptest.Server, *http.Request) {
	t.Helper()
	seen := new(http.Request)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*seen = *r.Clone(context.Background())
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if status == 401 {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func account(t *testing.T, e *Endpoint, accessToken string) (Account, error) {
	t.Helper()
	c, ctx := testClient(t)
	return c.Account(ctx, e, accessToken)
}

// TestAccountOIDC: a GET with the access token as a Bearer credential
// (OpenID Connect Core §5.3.1); the answer's sub, email, email_verified and
// name, read tolerantly and cleaned; what cannot name an account refused.
func TestAccountOIDC(t *testing.T) {
	const jsonType = "application/json"
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        Account
		class       Class  // 0: success
		inError     string // a part of the error's text
	}{
		{"every claim", 200, jsonType, `{"sub":"248289761001","email":"jane@example.com","email_verified":true,"name":"Jane Doe","picture":"x"}`,
			Account{Subject: "248289761001", Email: "jane@example.com", EmailVerified: true, Name: "Jane Doe"}, 0, ""},
		{"sub only", 200, jsonType, `{"sub":"s1"}`, Account{Subject: "s1"}, 0, ""},
		{"email_verified as a string", 200, jsonType, `{"sub":"s1","email_verified":"true"}`, Account{Subject: "s1", EmailVerified: true}, 0, ""},
		{"email_verified false", 200, jsonType, `{"sub":"s1","email":"a@b","email_verified":false}`, Account{Subject: "s1", Email: "a@b"}, 0, ""},
		{"a numeric sub as text", 200, jsonType, `{"sub":12345}`, Account{Subject: "12345"}, 0, ""},
		{"odd types read as absent", 200, jsonType, `{"sub":"s1","email":{"x":1},"name":["a"],"email_verified":1}`, Account{Subject: "s1"}, 0, ""},
		{"no Content-Type", 200, "", `{"sub":"s1"}`, Account{Subject: "s1"}, 0, ""},
		{"control characters in name and email are cleaned", 200, jsonType, `{"sub":"s1","name":"Eve\u001b[2J\r\nAdmin","email":"e\u202e@x"}`,
			Account{Subject: "s1", Name: "Eve [2J  Admin", Email: "e @x"}, 0, ""},

		{"no sub", 200, jsonType, `{"email":"a@b","name":"A"}`, Account{}, Refused, "no sub"},
		{"an empty sub", 200, jsonType, `{"sub":""}`, Account{}, Refused, "no sub"},
		{"null", 200, jsonType, `null`, Account{}, Refused, "no sub"},
		{"a control character in sub", 200, jsonType, `{"sub":"s1\nsecond"}`, Account{}, Refused, "control characters"},
		{"a sub longer than 255 bytes", 200, jsonType, `{"sub":"` + strings.Repeat("s", 256) + `"}`, Account{}, Refused, "longer than 255"},
		{"not JSON", 200, "text/plain", `sub=s1`, Account{}, Refused, "not a JSON object"},
		{"a JSON array", 200, jsonType, `[{"sub":"s1"}]`, Account{}, Refused, "not a JSON object"},
		{"a signed userinfo", 200, "application/jwt", `eyJhbGciOiJub25lIn0.eyJzdWIiOiJzMSJ9.`, Account{}, Refused, "application/jwt"},
		{"a gateway's page", 200, "text/html", `<html>login</html>`, Account{}, Temporary, "HTML"},
		{"401 without a body", 401, "", ``, Account{}, Refused, "refused the access token"},
		{"401 with an OAuth error", 401, jsonType, `{"error":"invalid_token","error_description":"expired"}`, Account{}, Refused, "invalid_token"},
		{"403", 403, jsonType, `{"error":"insufficient_scope"}`, Account{}, Refused, "insufficient_scope"},
		{"503", 503, "", ``, Account{}, Temporary, "HTTP 503"},
		{"a huge body", 200, jsonType, `{"sub":"s1","name":"` + strings.Repeat("n", MaxBody) + `"}`, Account{}, Refused, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, seen := userinfoServer(t, c.status, c.contentType, c.body)
			e := Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", UserinfoURL: srv.URL + "/userinfo"}
			got, err := account(t, &e, "at-1")
			if seen.Method != http.MethodGet || seen.URL.Path != "/userinfo" || seen.Header.Get("Authorization") != "Bearer at-1" {
				t.Errorf("request: got %s %s with Authorization %q, want GET /userinfo with Bearer at-1", seen.Method, seen.URL.Path, seen.Header.Get("Authorization"))
			}
			if c.class == 0 {
				if err != nil || got != c.want {
					t.Fatalf("Account: got %+v, %v; want %+v, nil", got, err, c.want)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Class != c.class || !strings.Contains(err.Error(), c.inError) {
				t.Fatalf("Account: got %+v, %v; want a %s error containing %q", got, err, c.class, c.inError)
			}
		})
	}
}

// TestAccountGitHub: the github preset reads GET /user with GitHub's
// headers: id (a number) is the subject, login the name, email may be null.
func TestAccountGitHub(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		want    Account
		inError string // "" when Account succeeds
	}{
		{"a user with a public email", 200, `{"login":"octocat","id":583231,"name":"The Octocat","email":"octocat@github.com"}`,
			Account{Subject: "583231", Name: "octocat", Email: "octocat@github.com"}, ""},
		{"email null", 200, `{"login":"octocat","id":583231,"email":null}`, Account{Subject: "583231", Name: "octocat"}, ""},
		{"no id", 200, `{"login":"octocat"}`, Account{}, "no user id"},
		{"id not an integer", 200, `{"login":"octocat","id":"abc"}`, Account{}, "no user id"},
		{"id zero", 200, `{"login":"octocat","id":0}`, Account{}, "no user id"},
		{"bad credentials", 401, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`, Account{}, "Bad credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, seen := userinfoServer(t, c.status, "application/json; charset=utf-8", c.body)
			e := Endpoint{Dialect: GitHub, ClientID: "Iv1.app", ClientSecret: "sec", UserinfoURL: srv.URL + "/api/v3/user"}
			got, err := account(t, &e, "ghu_token")
			if seen.Method != http.MethodGet || seen.URL.Path != "/api/v3/user" || seen.Header.Get("Authorization") != "Bearer ghu_token" ||
				seen.Header.Get("Accept") != githubMediaType || seen.Header.Get("X-GitHub-Api-Version") != githubAPIVersion {
				t.Errorf("request: got %s %s, headers %v; want GET /api/v3/user with GitHub's headers and the token", seen.Method, seen.URL.Path, seen.Header)
			}
			if c.inError == "" {
				if err != nil || got != c.want {
					t.Fatalf("Account: got %+v, %v; want %+v, nil", got, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.inError) {
				t.Fatalf("Account: got %+v, %v; want an error containing %q", got, err, c.inError)
			}
		})
	}
}

// TestAccountErrorsCarryNoToken: a userinfo error that quotes the access
// token does not show it, in any form a provider may echo it.
func TestAccountErrorsCarryNoToken(t *testing.T) {
	const token = "at/with+odd&chars=é"
	forms := echoForms("", token)
	for _, d := range []Dialect{OAuth2, GitHub} {
		t.Run(string(d), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(401)
				io.WriteString(w, `{"error":"invalid_token","error_description":"`+asciiJSON(r.Header.Get("Authorization"))+`","message":"`+asciiJSON(r.Header.Get("Authorization"))+`"}`)
			}))
			defer srv.Close()
			e := Endpoint{Dialect: d, ClientID: "app", ClientSecret: "sec", UserinfoURL: srv.URL}
			_, err := account(t, &e, token)
			if err == nil {
				t.Fatal("Account: got nil, want the provider's error")
			}
			if names := leaked(err.Error(), forms); len(names) > 0 {
				t.Errorf("error %q: shows the token as %v, want it redacted", err, names)
			}
		})
	}
}

// TestIDTokenKept: an id_token in a token answer is kept as sent, listed
// among the token's secrets; one that is no compact JWT is dropped, the
// answer still used.
func TestIDTokenKept(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzMSJ9.c2ln"
	cases := []struct {
		name, contentType, body, want string
	}{
		{"JSON", "application/json", `{"access_token":"at","id_token":"` + jwt + `"}`, jwt},
		{"form", "application/x-www-form-urlencoded", "access_token=at&id_token=" + jwt, jwt},
		{"none", "application/json", `{"access_token":"at"}`, ""},
		{"a line break in it", "application/json", `{"access_token":"at","id_token":"a.b\r\nX: y"}`, ""},
		{"not a string", "application/json", `{"access_token":"at","id_token":42}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := parseResponse(200, c.contentType, []byte(c.body))
			if err != nil || tok.IDToken != c.want {
				t.Fatalf("parseResponse: got %+v, %v; want IDToken %q", tok, err, c.want)
			}
			if secrets := tok.Secrets(); secrets[len(secrets)-1] != c.want {
				t.Errorf("Secrets: got %q, want the id token last", secrets)
			}
		})
	}
}
