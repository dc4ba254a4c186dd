package provider

import (
	"strings"
	"testing"
)

func TestEffectiveRefreshURL(t *testing.T) {
	e := Endpoint{Dialect: APIVideo, TokenURL: "https://ws.api.video/auth/api-key?x=1"}
	if got, want := e.EffectiveRefreshURL(), "https://ws.api.video/auth/refresh"; got != want {
		t.Fatalf("apivideo refresh URL = %q, want %q", got, want)
	}
	e = Endpoint{Dialect: OAuth2, TokenURL: "https://idp/token"}
	if got, want := e.EffectiveRefreshURL(), "https://idp/token"; got != want {
		t.Fatalf("oauth2 refresh URL = %q, want %q", got, want)
	}
}

func TestCheckURL(t *testing.T) {
	cases := []struct{ name, url, wantErr string }{
		{"https", "https://idp.example/token", ""},
		{"loopback http", "http://127.0.0.2:8080/t", ""},
		{"ipv6 loopback http", "http://[::1]:8080/t", ""},
		{"localhost http", "http://localhost/t", ""},
		{"remote http", "http://idp.example/t", "must use https"},
		{"ftp", "ftp://idp.example/t", "scheme"},
		{"no host", "https:///t", "no host"},
		{"userinfo", "https://u:p@idp.example/t", "credentials in the URL"},
		{"fragment", "https://idp.example/t#x", "fragment"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckURL(tc.url)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("CheckURL(%q) = %v, want error containing %q", tc.url, err, tc.wantErr)
			}
		})
	}
}

func TestMintNeeds(t *testing.T) {
	cases := []struct {
		name        string
		e           Endpoint
		mint, renew Credential
	}{
		{"client credentials ready", Endpoint{Dialect: OAuth2, ClientID: "id", ClientSecret: "s"}, "", ""},
		{"no secret", Endpoint{Dialect: OAuth2, ClientID: "id"}, NeedsClientSecret, ""},
		{"no client id", Endpoint{Dialect: Echo360}, NeedsClientID, NeedsClientID},
		{"apivideo without key", Endpoint{Dialect: APIVideo}, NeedsAPIKey, ""},
		{"apivideo with key", Endpoint{Dialect: APIVideo, APIKey: "k"}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.e.MintNeeds(); got != tc.mint {
				t.Errorf("MintNeeds() = %q, want %q", got, tc.mint)
			}
			if got := tc.e.RefreshNeeds(); got != tc.renew {
				t.Errorf("RefreshNeeds() = %q, want %q", got, tc.renew)
			}
			if got, want := tc.e.CanMint(), tc.mint == ""; got != want {
				t.Errorf("CanMint() = %v, want %v", got, want)
			}
		})
	}
}
