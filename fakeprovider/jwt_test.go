package fakeprovider

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Keys of the signing-dialect tests: a registered RSA key (and its
// certificate), an EC key, and an RSA key no provider knows.
var (
	jwtRSA   = func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k }()
	jwtEC    = func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }()
	jwtOther = func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k }()
	jwtCert  = func() []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "fake"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &jwtRSA.PublicKey, jwtRSA)
		return der
	}()
)

var jwtNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// signed is a JWT of claims signed by key with alg and the extra headers.
func signed(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, headers map[string]any, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims are a valid assertion's claims at jwtNow, changed by edit (a nil
// value deletes a claim).
func claims(iss, sub, aud string, edit map[string]any) map[string]any {
	c := map[string]any{"iss": iss, "sub": sub, "aud": aud, "iat": jwtNow.Add(-30 * time.Second).Unix(),
		"exp": jwtNow.Add(90 * time.Second).Unix(), "jti": rand.Text()}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func startSigned(t *testing.T) (*Server, *http.Client) {
	t.Helper()
	s, c := start(t, Options{Now: func() time.Time { return jwtNow }})
	s.AddAssertionKey("sa@p.iam.gserviceaccount.com", "kid-1", &jwtRSA.PublicKey)
	s.AddAssertionKey("consumer-key", "", &jwtRSA.PublicKey)
	s.AddSalesforceUser("consumer-key", "user@acme.com")
	s.AddAssertionKey("0oa-okta", "", &jwtEC.PublicKey)
	s.AddAssertionKey("oauth2-client", "", &jwtRSA.PublicKey)
	if err := s.AddAssertionCertificate("ms-client", jwtCert); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestSignedDialectsRejectWhatTheRealServiceRejects: every assertion is
// verified against the registered public key, and each provider's rules
// refuse in its own error shape.
func TestSignedDialectsRejectWhatTheRealServiceRejects(t *testing.T) {
	s, c := startSigned(t)
	googleURL, sfURL := s.URL()+PathGoogleToken, s.URL()+PathSalesforceToken
	msURL, oktaURL := s.URL()+MicrosoftTokenPath("tenant-1"), s.URL()+PathOktaToken
	certSum := sha256.Sum256(jwtCert)
	x5t := map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(certSum[:])}
	google := func(key crypto.Signer, kid string, edit map[string]any) url.Values {
		c := claims("sa@p.iam.gserviceaccount.com", "", googleURL, edit)
		delete(c, "sub")
		if _, ok := edit["scope"]; !ok {
			c["scope"] = "https://www.googleapis.com/auth/cloud-platform"
		}
		return url.Values{"grant_type": {grantJWTBearer}, "assertion": {signed(t, key, jose.RS256, map[string]any{"kid": kid}, c)}}
	}
	salesforce := func(key crypto.Signer, edit map[string]any) url.Values {
		return url.Values{"grant_type": {grantJWTBearer}, "assertion": {signed(t, key, jose.RS256, nil, claims("consumer-key", "user@acme.com", SalesforceAudience, edit))}}
	}
	microsoft := func(alg jose.SignatureAlgorithm, headers map[string]any, edit map[string]any) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {"ms-client"}, "scope": {"https://graph.microsoft.com/.default"},
			"client_assertion_type": {clientAssertionType}, "client_assertion": {signed(t, jwtRSA, alg, headers, claims("ms-client", "ms-client", msURL, edit))}}
	}
	okta := func(key crypto.Signer, alg jose.SignatureAlgorithm, edit map[string]any) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {"okta.users.read"},
			"client_assertion_type": {clientAssertionType}, "client_assertion": {signed(t, key, alg, nil, claims("0oa-okta", "0oa-okta", oktaURL, edit))}}
	}
	oauth2URL := s.URL() + "/oauth2/token"
	oauth2 := func(key crypto.Signer, edit map[string]any, extra url.Values) url.Values {
		v := url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {clientAssertionType}, "client_assertion": {signed(t, key, jose.RS256, nil, claims("oauth2-client", "oauth2-client", oauth2URL, edit))}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	future := jwtNow.Add(time.Minute).Unix()
	reused := okta(jwtEC, jose.ES256, map[string]any{"jti": "once"})
	cases := []struct {
		name   string
		url    string
		form   url.Values
		status int
		code   string
	}{
		{"google: accepted", googleURL, google(jwtRSA, "kid-1", nil), 200, ""},
		{"google: signed by another key", googleURL, google(jwtOther, "kid-1", nil), 400, "invalid_grant"},
		{"google: a kid it does not know", googleURL, google(jwtRSA, "kid-2", nil), 400, "invalid_grant"},
		{"google: wrong aud", googleURL, google(jwtRSA, "kid-1", map[string]any{"aud": "https://oauth2.googleapis.com/token"}), 400, "invalid_grant"},
		{"google: longer than an hour", googleURL, google(jwtRSA, "kid-1", map[string]any{"exp": jwtNow.Add(2 * time.Hour).Unix()}), 400, "invalid_grant"},
		{"google: no scope", googleURL, google(jwtRSA, "kid-1", map[string]any{"scope": ""}), 400, "invalid_scope"},
		{"salesforce: accepted", sfURL, salesforce(jwtRSA, nil), 200, ""},
		{"salesforce: exp more than 3 minutes ahead", sfURL, salesforce(jwtRSA, map[string]any{"exp": jwtNow.Add(4 * time.Minute).Unix()}), 400, "invalid_grant"},
		{"salesforce: iat in the future", sfURL, salesforce(jwtRSA, map[string]any{"iat": future}), 400, "invalid_grant"},
		{"salesforce: a user who did not approve", sfURL, salesforce(jwtRSA, map[string]any{"sub": "other@acme.com"}), 400, "invalid_grant"},
		{"salesforce: an unknown consumer key's signature", sfURL, salesforce(jwtOther, nil), 400, "invalid_client_id"},
		{"salesforce: aud of a sandbox", sfURL, salesforce(jwtRSA, map[string]any{"aud": "https://test.salesforce.com"}), 400, "invalid_grant"},
		{"microsoft: accepted (PS256)", msURL, microsoft(jose.PS256, x5t, nil), 200, ""},
		{"microsoft: accepted (RS256)", msURL, microsoft(jose.RS256, x5t, nil), 200, ""},
		{"microsoft: no x5t#S256", msURL, microsoft(jose.PS256, nil, nil), 401, "invalid_client"},
		{"microsoft: aud of another tenant", msURL, microsoft(jose.PS256, x5t, map[string]any{"aud": s.URL() + MicrosoftTokenPath("other")}), 401, "invalid_client"},
		{"microsoft: expired", msURL, microsoft(jose.PS256, x5t, map[string]any{"exp": jwtNow.Add(-time.Second).Unix()}), 401, "invalid_client"},
		{"okta: accepted (ES256)", oktaURL, reused, 200, ""},
		{"okta: a jti used before", oktaURL, reused, 401, "invalid_client"},
		{"okta: exp more than an hour ahead", oktaURL, okta(jwtEC, jose.ES256, map[string]any{"exp": jwtNow.Add(61 * time.Minute).Unix()}), 401, "invalid_client"},
		{"okta: iss is not sub", oktaURL, okta(jwtEC, jose.ES256, map[string]any{"sub": "someone"}), 401, "invalid_client"},
		{"okta: PS256 is not taken", oktaURL, okta(jwtRSA, jose.PS256, nil), 401, "invalid_client"},
		{"oauth2 private_key_jwt: accepted", oauth2URL, oauth2(jwtRSA, nil, nil), 200, ""},
		{"oauth2 private_key_jwt: another key's signature", oauth2URL, oauth2(jwtOther, nil, nil), 401, "invalid_client"},
		{"oauth2 private_key_jwt: aud of another endpoint", oauth2URL, oauth2(jwtRSA, map[string]any{"aud": oktaURL}, nil), 401, "invalid_client"},
		{"oauth2 private_key_jwt: and a client_secret too", oauth2URL, oauth2(jwtRSA, nil, url.Values{"client_id": {"oauth2-client"}, "client_secret": {"s"}}), 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := postForm(t, c, tc.url, tc.form)
			if tc.code == "" {
				wantStatus(t, r, tc.status)
				if tok := r.str(t, "access_token"); !s.Valid(tok) {
					t.Errorf("the issued token %q is not valid at the fake", tok)
				}
				return
			}
			wantOAuthError(t, r, tc.status, tc.code)
		})
	}
}

// TestGitHubApp: the installation is found on its owner's account, the
// token is minted with an app JWT and GitHub's headers for the requested
// repositories and permissions, and revoking it ends it.
func TestGitHubApp(t *testing.T) {
	s, c := startSigned(t)
	s.AddAssertionKey("1234", "", &jwtRSA.PublicKey)
	s.AddGitHubInstallation("1234", "acme", true, 42, "api", "web")
	api := s.URL() + PathGitHubAPI
	appJWT := func(key crypto.Signer, exp time.Time) string {
		return signed(t, key, jose.RS256, nil, map[string]any{"iss": "1234", "iat": jwtNow.Add(-time.Minute).Unix(), "exp": exp.Unix()})
	}
	github := func(token string, headers ...reqOpt) []reqOpt {
		return append([]reqOpt{withHeader("Authorization", "Bearer "+token), withHeader("Accept", "application/vnd.github+json"),
			withHeader("X-GitHub-Api-Version", "2022-11-28")}, headers...)
	}
	good := appJWT(jwtRSA, jwtNow.Add(9*time.Minute))

	if r := send(t, c, "GET", api+"/users/acme/installation", "", "", github(good)...); r.status != 404 {
		t.Errorf("an organization's installation looked up as a user's: status %d, want 404", r.status)
	}
	found := send(t, c, "GET", api+"/orgs/acme/installation", "", "", github(good)...)
	wantFields(t, found, map[string]any{"id": float64(42)})

	for _, tc := range []struct {
		name   string
		body   string
		opts   []reqOpt
		status int
	}{
		{"exp more than 10 minutes ahead", "", github(appJWT(jwtRSA, jwtNow.Add(11*time.Minute))), 401},
		{"another app's key", "", github(appJWT(jwtOther, jwtNow.Add(time.Minute))), 401},
		{"no API version", "", github(good, withHeader("X-GitHub-Api-Version", "")), 400},
		{"a repository outside the installation", `{"repositories":["secret"]}`, github(good), 422},
		{"admin on contents", `{"permissions":{"contents":"admin"}}`, github(good), 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, send(t, c, "POST", api+"/app/installations/42/access_tokens", "application/json", tc.body, tc.opts...), tc.status)
		})
	}

	r := send(t, c, "POST", api+"/app/installations/42/access_tokens", "application/json",
		`{"repositories":["web"],"permissions":{"contents":"read"}}`, github(good)...)
	wantStatus(t, r, 201)
	token := r.str(t, "token")
	wantFields(t, r, map[string]any{"expires_at": jwtNow.Add(time.Hour).Format(time.RFC3339), "repository_selection": "selected"})
	if !s.Valid(token) {
		t.Fatal("the installation token is not valid at the fake")
	}
	if r := send(t, c, "DELETE", api+"/installation/token", "", "", github(token)...); r.status != 204 {
		t.Errorf("revoke: status %d, want 204", r.status)
	}
	if s.Valid(token) || s.GitHubRevocations() != 1 {
		t.Errorf("after DELETE /installation/token: valid=%v revocations=%d, want false and 1", s.Valid(token), s.GitHubRevocations())
	}
}
