package provider

import (
	"encoding/json"
	"errors"
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
		wantClass   Class
	}{
		{name: "rfc6749", status: 200, contentType: "application/json",
			body: `{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}`,
			want: &Token{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt", ExpiresIn: time.Hour, Scopes: []string{"a", "b"}}},
		{name: "endorsed string expiry and scope array", status: 200, contentType: "application/json; charset=utf-8",
			body: `{"is_error":false,"access_token":"at","token_type":"Bearer","expires_in":"1209600","scope":["all:read","all:write"]}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 1209600 * time.Second, Scopes: []string{"all:read", "all:write"}}},
		{name: "refresh token expiry", status: 200, contentType: "application/json",
			body: `{"access_token":"at","refresh_token":"rt","refresh_token_expires_in":"86400"}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt", RefreshExpiresIn: 24 * time.Hour}},
		{name: "intuit refresh token expiry", status: 200, contentType: "application/json",
			body: `{"access_token":"at","refresh_token":"rt","x_refresh_token_expires_in":8726400,"expires_in":3600}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt", ExpiresIn: time.Hour, RefreshExpiresIn: 8726400 * time.Second}},
		{name: "unreadable refresh token expiry is ignored", status: 200, contentType: "application/json",
			body: `{"access_token":"at","refresh_token_expires_in":{"d":1}}`, want: &Token{AccessToken: "at", TokenType: "Bearer"}},
		{name: "no expiry, no type", status: 200, contentType: "application/json", body: `{"access_token":"at","extra":{"x":1}}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer"}},
		{name: "float expiry", status: 200, contentType: "application/json", body: `{"access_token":"at","expires_in":59.9}`,
			want: &Token{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 59 * time.Second}},
		{name: "form body", status: 200, contentType: "application/x-www-form-urlencoded",
			body: "access_token=at&token_type=bearer&expires_in=60", want: &Token{AccessToken: "at", TokenType: "bearer", ExpiresIn: time.Minute}},
		{name: "no content type, JSON body", status: 200, body: `{"access_token":"at"}`, want: &Token{AccessToken: "at", TokenType: "Bearer"}},
		{name: "missing access token", status: 200, contentType: "application/json", body: `{"token_type":"bearer"}`, wantErr: "no access_token", wantClass: Refused},
		{name: "html 200", status: 200, contentType: "text/html", body: "<html>login</html>", wantErr: "HTML page", wantClass: Temporary},
		{name: "html without content type", status: 502, body: "  <!DOCTYPE html>", wantErr: "HTML page", wantClass: Temporary},
		{name: "not json", status: 200, contentType: "application/json", body: `{"access_token":`, wantErr: "not a usable token response", wantClass: Refused},
		{name: "access token wrong type", status: 200, contentType: "application/json", body: `{"access_token":42}`, wantErr: "not a usable token response", wantClass: Refused},
		{name: "expiry wrong type", status: 200, contentType: "application/json", body: `{"access_token":"at","expires_in":{"s":1}}`, wantErr: "not a usable", wantClass: Refused},
		{name: "expiry not numeric", status: 200, contentType: "application/json", body: `{"access_token":"at","expires_in":"soon"}`, wantErr: "not a usable", wantClass: Refused},
		{name: "rfc error", status: 400, contentType: "application/json", body: `{"error":"invalid_client","error_description":"bad secret"}`,
			wantErr: "provider returned HTTP 400: invalid_client: bad secret", wantClass: Refused},
		{name: "error in a 200", status: 200, contentType: "application/json", body: `{"error":"invalid_scope"}`, wantErr: "invalid_scope", wantClass: Refused},
		{name: "endorsed is_error", status: 200, contentType: "application/json", body: `{"is_error":true,"message":"nope"}`, wantErr: "nope", wantClass: Refused},
		{name: "apivideo problem", status: 401, contentType: "application/problem+json",
			body:    `{"type":"https://docs.api.video/reference/authentication-invalid-api-key","title":"The API key is invalid.","status":401}`,
			wantErr: "authentication-invalid-api-key: The API key is invalid.", wantClass: Refused},
		{name: "odd error field type", status: 400, contentType: "application/json", body: `{"error":{"code":7},"message":"structured"}`, wantErr: "structured", wantClass: Refused},
		{name: "error body not json", status: 500, contentType: "application/json", body: `oops`, wantErr: "error response is not JSON", wantClass: Temporary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseResponse(tc.status, tc.contentType, []byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("error %T is not *Error", err)
				}
				if pe.Class != tc.wantClass {
					t.Fatalf("class = %v, want %v", pe.Class, tc.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want a token", err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, tc.want); g != w {
				t.Fatalf("token = %s, want %s", g, w)
			}
		})
	}
}

// TestRefusalShapes: every way providers say no to a refresh is Refused, so
// the token sent is never sent again; outages are Temporary.
func TestRefusalShapes(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        Class
	}{
		{"invalid_grant", 400, "application/json", `{"error":"invalid_grant"}`, Refused},
		{"invalid_request", 400, "application/json", `{"error":"invalid_request"}`, Refused},
		{"invalid_token 401", 401, "application/json", `{"error":"invalid_token"}`, Refused},
		{"unsupported_grant_type", 400, "application/json", `{"error":"unsupported_grant_type"}`, Refused},
		{"error inside a 200 (GitHub)", 200, "application/json", `{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}`, Refused},
		{"plain-text 403 from a gateway", 403, "text/plain", "Forbidden", Refused},
		{"api.video problem+json", 400, "application/problem+json", `{"type":"https://docs.api.video/reference/invalid-refresh-token","title":"The refresh token is either expired or invalid.","status":400}`, Refused},
		{"bare 400", 400, "application/json", `{}`, Refused},
		{"503", 503, "application/json", `{"error":"temporarily_unavailable"}`, Temporary},
		{"429", 429, "application/json", `{"error":"slow_down"}`, Temporary},
		{"408", 408, "text/plain", "timeout", Temporary},
		{"plain-text 502", 502, "text/plain", "Bad Gateway", Temporary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseResponse(tc.status, tc.contentType, []byte(tc.body))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want an *Error", err)
			}
			if pe.Class != tc.want {
				t.Fatalf("class = %v, want %v (error %v)", pe.Class, tc.want, err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}
