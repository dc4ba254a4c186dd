package tokenbroker

import (
	"bytes"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// backendJWKS is an HTTP client whose requests for …/jwks/<name> are served
// by the backend with no token, as Vault serves the unauthenticated path.
func (e *env) backendJWKS() *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := e.b.HandleRequest(r.Context(), &logical.Request{Operation: logical.ReadOperation,
			Path: "jwks/" + path.Base(r.URL.Path), Storage: e.storage})
		if err != nil {
			return &http.Response{StatusCode: 404, Body: io.NopCloser(strings.NewReader(err.Error()))}, nil
		}
		body := resp.Data[logical.HTTPRawBody].([]byte)
		return &http.Response{StatusCode: resp.Data[logical.HTTPStatusCode].(int), Body: io.NopCloser(bytes.NewReader(body)),
			Header: http.Header{"Content-Type": {resp.Data[logical.HTTPContentType].(string)}}}, nil
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestZitadelVerifiesOurAssertions: zitadel's OpenID provider (not ours)
// accepts our private_key_jwt client assertions and JWT profile grants,
// signed RS256, PS256 and ES256 by imported and generated keys, with the
// public key registered from key/<name> or fetched from jwks/<name>; and it
// refuses them once it no longer knows the key.
func TestZitadelVerifiesOurAssertions(t *testing.T) {
	o, e := startZitadelEnv(t) // dates assertions by the real clock, as zitadel checks them
	cases := []struct {
		name   string
		fields map[string]any
		jwks   bool // the OP fetches the key from jwks/<name>
	}{
		{"private_key_jwt with a generated EC key", map[string]any{"generate_key": "ec-p256"}, false},
		{"private_key_jwt with an imported RSA key, PS256", map[string]any{"private_key": pkcs8PEM(testRSA), "signing_alg": "PS256"}, false},
		{"private_key_jwt with the key fetched from jwks", map[string]any{"generate_key": "rsa-2048"}, true},
		{"JWT profile grant with an RSA PKCS#1 key", map[string]any{"grant": "jwt_bearer", "private_key": pkcs1PEM(testRSA)}, false},
		{"JWT profile grant, key fetched from jwks", map[string]any{"grant": "jwt_bearer", "generate_key": "ec-p256"}, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "z" + string(rune('a'+i))
			client := "svc-" + name
			key := e.configSigned(name, "oauth2", withFields(map[string]any{"token_url": o.TokenURL, "client_id": client,
				"assertion_audience": o.Issuer, "scopes": "openid"}, c.fields))
			if c.jwks {
				o.AddClientJWKS(client, "https://vault.example/v1/tokenbroker/jwks/"+name, e.backendJWKS())
			} else {
				o.AddClient(client, publicJWK(t, key, ""))
			}
			tok := e.token(name)
			if subject, ok := o.Subject(tok); !ok || subject != client {
				t.Fatalf("the OP did not issue %q to %s (subject %q)", tok, client, subject)
			}
			expectField(t, e.status(name), "last_grant", map[bool]string{true: "jwt_bearer", false: "client_credentials"}[c.fields["grant"] == "jwt_bearer"])
		})
	}
	t.Run("refused once the OP no longer knows the key", func(t *testing.T) {
		e.configSigned("stale", "oauth2", map[string]any{"token_url": o.TokenURL, "client_id": "svc-stale",
			"assertion_audience": o.Issuer, "generate_key": "ec-p256"})
		o.AddClient("svc-stale", publicJWK(t, e.mustDo(logical.ReadOperation, "key/za", nil).Data, "")) // another name's key
		_, err := e.creds("stale", nil)
		expectErr(t, "an assertion signed by an unregistered key", err, "provider returned HTTP")
	})
}
