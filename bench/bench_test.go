// Package bench holds tokenbroker's benchmarks: the no-op floor plugin
// (bench/noop), the load driver against a real Vault (bench/cmd/load, run by
// bench/run.sh and `make bench`) and, here, in-process micro-benchmarks that
// need only exported API.
package bench

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// cannedTransport answers every request with one fixed token response, so
// the benchmark measures request building and response parsing, not a network.
type cannedTransport struct {
	contentType string
	body        string
}

func (c cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {c.contentType}},
		Body:       io.NopCloser(strings.NewReader(c.body)),
		Request:    req,
	}, nil
}

const (
	tokenJSON = `{"access_token":"at_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG","token_type":"Bearer",` +
		`"expires_in":3600,"refresh_token":"rt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG","scope":"read write"}`
	// Endorsed: expires_in as a string, scope as an array, is_error.
	endorsedJSON = `{"access_token":"at_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG","token_type":"Bearer",` +
		`"expires_in":"1209600","scope":["all:read","all:write"],"is_error":false}`
)

// BenchmarkExchange is one provider exchange (build the request, parse the
// response) per dialect, against a canned response.
func BenchmarkExchange(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ep    *provider.Endpoint
		grant provider.Grant
		rt    string
		body  string
	}{
		{"echo360/client_credentials", &provider.Endpoint{Dialect: provider.Echo360, TokenURL: "https://127.0.0.1/oauth2/access_token",
			ClientID: "client-1", ClientSecret: "secret"}, provider.GrantClientCredentials, "", tokenJSON},
		{"echo360/refresh_token", &provider.Endpoint{Dialect: provider.Echo360, TokenURL: "https://127.0.0.1/oauth2/access_token",
			ClientID: "client-1", ClientSecret: "secret"}, provider.GrantRefreshToken, "rt_previous", tokenJSON},
		{"oauth2/client_credentials", &provider.Endpoint{Dialect: provider.OAuth2, TokenURL: "https://127.0.0.1/oauth2/token",
			ClientID: "client-1", ClientSecret: "secret", Scopes: []string{"read", "write"}}, provider.GrantClientCredentials, "", tokenJSON},
		{"endorsed/json", &provider.Endpoint{Dialect: provider.Endorsed, TokenURL: "https://127.0.0.1/api/v1/auth/tokens",
			ClientID: "client-1", ClientSecret: "secret", Scopes: []string{"all:read"}, Encoding: provider.EncodeJSON},
			provider.GrantClientCredentials, "", endorsedJSON},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := &provider.Client{HTTP: &http.Client{Transport: cannedTransport{"application/json", tc.body}}}
			ctx := context.Background()
			if _, err := c.Exchange(ctx, tc.ep, tc.grant, tc.rt); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Exchange(ctx, tc.ep, tc.grant, tc.rt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
