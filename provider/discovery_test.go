package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestMetadataURLs(t *testing.T) {
	cases := []struct{ issuer, oidc, rfc8414 string }{
		{"https://idp.example", "https://idp.example/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server"},
		{"https://idp.example/", "https://idp.example/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server"},
		{"https://idp.example/oauth2/default", "https://idp.example/oauth2/default/.well-known/openid-configuration",
			"https://idp.example/.well-known/oauth-authorization-server/oauth2/default"},
	}
	for _, c := range cases {
		got, err := MetadataURLs(c.issuer)
		if err != nil || !slices.Equal(got, []string{c.oidc, c.rfc8414}) {
			t.Errorf("MetadataURLs(%q) = %v, %v; want [%s %s]", c.issuer, got, err, c.oidc, c.rfc8414)
		}
	}
}

func TestDiscover(t *testing.T) {
	var base string
	docs := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(strings.ReplaceAll(doc, "BASE", base)))
	}))
	defer srv.Close()
	base = srv.URL
	full := `{"issuer":"BASE","authorization_endpoint":"BASE/auth","token_endpoint":"BASE/token","device_authorization_endpoint":"BASE/device"}`
	cases := []struct {
		name    string
		docs    map[string]string
		want    Metadata
		wantErr string
	}{
		{"OpenID Connect discovery", map[string]string{"/.well-known/openid-configuration": full},
			Metadata{Issuer: base, AuthorizationEndpoint: base + "/auth", TokenEndpoint: base + "/token", DeviceAuthorizationEndpoint: base + "/device"}, ""},
		{"RFC 8414 when OIDC has none", map[string]string{"/.well-known/oauth-authorization-server": `{"issuer":"BASE","token_endpoint":"BASE/token"}`},
			Metadata{Issuer: base, TokenEndpoint: base + "/token"}, ""},
		{"another issuer is refused", map[string]string{"/.well-known/openid-configuration": `{"issuer":"https://evil.example","token_endpoint":"BASE/token"}`},
			Metadata{}, "names issuer"},
		{"a plain-http endpoint off loopback is refused", map[string]string{"/.well-known/openid-configuration": `{"issuer":"BASE","token_endpoint":"http://idp.example/token"}`},
			Metadata{}, "must use https"},
		{"revocation and userinfo endpoints", map[string]string{"/.well-known/openid-configuration": `{"issuer":"BASE","token_endpoint":"BASE/token","revocation_endpoint":"BASE/revoke","userinfo_endpoint":"BASE/userinfo"}`},
			Metadata{Issuer: base, TokenEndpoint: base + "/token", RevocationEndpoint: base + "/revoke", UserinfoEndpoint: base + "/userinfo"}, ""},
		{"a plain-http userinfo endpoint off loopback is refused", map[string]string{"/.well-known/openid-configuration": `{"issuer":"BASE","token_endpoint":"BASE/token","userinfo_endpoint":"http://idp.example/userinfo"}`},
			Metadata{}, "must use https"},
		{"a plain-http revocation endpoint off loopback is refused", map[string]string{"/.well-known/openid-configuration": `{"issuer":"BASE","token_endpoint":"BASE/token","revocation_endpoint":"http://idp.example/revoke"}`},
			Metadata{}, "must use https"},
		{"nothing published", map[string]string{}, Metadata{}, "HTTP 404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clear(docs)
			for k, v := range c.docs {
				docs[k] = v
			}
			got, err := Discover(context.Background(), srv.Client(), base)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got.Issuer != c.want.Issuer || got.TokenEndpoint != c.want.TokenEndpoint ||
				got.AuthorizationEndpoint != c.want.AuthorizationEndpoint || got.DeviceAuthorizationEndpoint != c.want.DeviceAuthorizationEndpoint ||
				got.RevocationEndpoint != c.want.RevocationEndpoint || got.UserinfoEndpoint != c.want.UserinfoEndpoint {
				t.Fatalf("Discover = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
