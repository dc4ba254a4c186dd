package provider

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is SHA-1 by definition
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Test keys, made once: signing is what is tested, not key generation.
var (
	sigRSA = func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k }()
	sigEC  = func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }()
	// sigCert is a self-signed certificate of sigRSA (DER).
	sigCert = func() []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokenbroker test"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &sigRSA.PublicKey, sigRSA)
		return der
	}()
)

// sigNow is the clock of every assertion test.
var sigNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func sigClock() time.Time { return sigNow }

// verifiedJWT checks jws's signature with pub (and that it used alg) and
// returns its protected header and claims.
func verifiedJWT(t *testing.T, jws string, pub crypto.PublicKey, alg string) (jose.Header, map[string]any) {
	t.Helper()
	parsed, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("parse %s JWS: %v", alg, err)
	}
	payload, err := parsed.Verify(pub)
	if err != nil {
		t.Fatalf("signature does not verify with the public key: %v", err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return parsed.Signatures[0].Protected, claims
}

// TestAssertionClaims: what each dialect's assertions claim, against the
// provider's documentation (dialect.go cites it).
func TestAssertionClaims(t *testing.T) {
	iat := sigNow.Add(-30 * time.Second).Unix()
	cases := []struct {
		name   string
		e      Endpoint
		client bool
		want   map[string]any // claims; nil values must be absent
	}{
		{"RFC 7523 grant: defaults", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer, ClientID: "app", TokenURL: "https://idp.example/token"}, false,
			map[string]any{"iss": "app", "sub": "app", "aud": "https://idp.example/token", "iat": iat, "exp": iat + 120, "scope": nil}},
		{"configured iss, sub, aud, lifetime and claims", Endpoint{Dialect: OAuth2, Grant: GrantJWTBearer, ClientID: "app", TokenURL: "https://idp.example/token",
			Assertion: Assertion{Issuer: "i", Subject: "s", Audience: "a", TTL: time.Hour, Claims: map[string]any{"tenant": "t1", "exp": 1}}}, false,
			map[string]any{"iss": "i", "sub": "s", "aud": "a", "exp": iat + 3600, "tenant": "t1"}},
		{"google: the scopes in a scope claim, no sub", Endpoint{Dialect: Google, Scopes: []string{"a", "b"}, TokenURL: GoogleTokenURL,
			Assertion: Assertion{Issuer: "sa@p.iam.gserviceaccount.com"}}, false,
			map[string]any{"iss": "sa@p.iam.gserviceaccount.com", "sub": nil, "aud": GoogleTokenURL, "scope": "a b"}},
		{"google with domain-wide delegation: sub", Endpoint{Dialect: Google, TokenURL: GoogleTokenURL,
			Assertion: Assertion{Issuer: "sa@p.iam.gserviceaccount.com", Subject: "user@example.com"}}, false,
			map[string]any{"sub": "user@example.com"}},
		{"salesforce: aud is the login host, lifetime at most 3 minutes", Endpoint{Dialect: SalesforceJWT, ClientID: "consumer-key",
			TokenURL: "https://acme.my.salesforce.com/services/oauth2/token", Assertion: Assertion{Subject: "u@acme.com", TTL: time.Hour}}, false,
			map[string]any{"iss": "consumer-key", "sub": "u@acme.com", "aud": "https://login.salesforce.com", "exp": iat + 180}},
		{"salesforce sandbox: aud is test.salesforce.com", Endpoint{Dialect: SalesforceJWT, ClientID: "k",
			TokenURL: "https://test.salesforce.com/services/oauth2/token", Assertion: Assertion{Subject: "u"}}, false,
			map[string]any{"aud": "https://test.salesforce.com"}},
		{"github app: iss the app id, iat 60 s back, nothing else", Endpoint{Dialect: GitHubApp, Installation: &Installation{AppID: "1234"},
			Assertion: Assertion{TTL: 10 * time.Minute}}, false,
			map[string]any{"iss": "1234", "iat": sigNow.Add(-time.Minute).Unix(), "exp": sigNow.Add(9 * time.Minute).Unix(), "aud": nil, "sub": nil, "jti": nil}},
		{"client assertion: iss and sub are the client id", Endpoint{Dialect: Okta, ClientID: "0oa1", TokenURL: "https://acme.okta.com/oauth2/v1/token",
			Assertion: Assertion{Issuer: "ignored", Subject: "ignored"}}, true,
			map[string]any{"iss": "0oa1", "sub": "0oa1", "aud": "https://acme.okta.com/oauth2/v1/token"}},
		{"client assertion to an OpenID provider: aud as configured", Endpoint{Dialect: OAuth2, ClientID: "c", TokenURL: "https://op.example/oauth/token",
			Assertion: Assertion{Audience: "https://op.example"}}, true,
			map[string]any{"aud": "https://op.example"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.e
			e.Key, e.Now = &SigningKey{Signer: sigRSA, KeyID: "kid-1"}, sigClock
			jws, err := e.assertion(c.client)
			if err != nil {
				t.Fatalf("assertion: %v", err)
			}
			header, claims := verifiedJWT(t, jws, &sigRSA.PublicKey, e.SigningAlgorithm())
			if header.KeyID != "kid-1" || header.ExtraHeaders["typ"] != "JWT" {
				t.Errorf("header kid %q typ %v, want kid-1 and JWT", header.KeyID, header.ExtraHeaders["typ"])
			}
			for k, want := range c.want {
				got, present := claims[k]
				switch {
				case want == nil && present:
					t.Errorf("claim %s = %v, want none", k, got)
				case want != nil && !sameClaim(got, want):
					t.Errorf("claim %s = %v (%T), want %v", k, got, got, want)
				}
			}
			if _, noJTI := c.want["jti"]; !noJTI && len(jtiOf(claims)) != 22 {
				t.Errorf("jti = %v, want 128 random bits in base64url (22 characters)", claims["jti"])
			}
		})
	}
}

func sameClaim(got, want any) bool {
	if n, ok := want.(int64); ok {
		f, isNum := got.(float64)
		return isNum && int64(f) == n
	}
	return got == want
}

func jtiOf(claims map[string]any) string { s, _ := claims["jti"].(string); return s }

// TestAssertionAlgorithms: RS256, PS256 (a salt as long as the hash, as RFC
// 7518 §3.5 requires) and ES256 each verify with the public key; a key
// cannot sign an algorithm of another type.
func TestAssertionAlgorithms(t *testing.T) {
	for _, c := range []struct {
		alg    string
		signer crypto.Signer
		pub    crypto.PublicKey
	}{{RS256, sigRSA, &sigRSA.PublicKey}, {PS256, sigRSA, &sigRSA.PublicKey}, {ES256, sigEC, &sigEC.PublicKey}} {
		t.Run(c.alg, func(t *testing.T) {
			e := Endpoint{Dialect: OAuth2, ClientID: "c", TokenURL: "https://idp.example/t", Now: sigClock,
				Key: &SigningKey{Signer: c.signer, Algorithm: c.alg}}
			jws, err := e.assertion(true)
			if err != nil {
				t.Fatal(err)
			}
			header, _ := verifiedJWT(t, jws, c.pub, c.alg)
			if header.Algorithm != c.alg {
				t.Errorf("alg = %s, want %s", header.Algorithm, c.alg)
			}
			if c.alg == PS256 {
				parts := strings.Split(jws, ".")
				sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
				digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
				if err := rsa.VerifyPSS(&sigRSA.PublicKey, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
					t.Errorf("PS256 salt is not the hash's length: %v", err)
				}
			}
		})
	}
	e := Endpoint{Dialect: OAuth2, ClientID: "c", TokenURL: "https://idp.example/t", Key: &SigningKey{Signer: sigEC, Algorithm: RS256}}
	if _, err := e.assertion(true); err == nil || !strings.Contains(err.Error(), "cannot sign RS256") {
		t.Errorf("an EC key asked for RS256: err = %v, want cannot sign RS256", err)
	}
}

// TestSigningAlgorithmDefaults: RS256 for RSA (PS256 for Microsoft), ES256 for EC.
func TestSigningAlgorithmDefaults(t *testing.T) {
	for _, c := range []struct {
		d      Dialect
		signer crypto.Signer
		want   string
	}{{OAuth2, sigRSA, RS256}, {Microsoft, sigRSA, PS256}, {Okta, sigEC, ES256}, {OAuth2, sigEC, ES256}} {
		e := Endpoint{Dialect: c.d, Key: &SigningKey{Signer: c.signer}}
		if got := e.SigningAlgorithm(); got != c.want {
			t.Errorf("%s with %T: SigningAlgorithm = %s, want %s", c.d, c.signer, got, c.want)
		}
	}
}

// TestCertificateHeaders: a certificate adds x5t (SHA-1) and x5t#S256.
func TestCertificateHeaders(t *testing.T) {
	e := Endpoint{Dialect: Microsoft, ClientID: "c", TokenURL: "https://login.microsoftonline.com/t/oauth2/v2.0/token", Now: sigClock,
		Key: &SigningKey{Signer: sigRSA, Certificate: sigCert}}
	jws, err := e.assertion(true)
	if err != nil {
		t.Fatal(err)
	}
	header, _ := verifiedJWT(t, jws, &sigRSA.PublicKey, PS256)
	s1, s256 := sha1.Sum(sigCert), sha256.Sum256(sigCert) //nolint:gosec
	if got, want := header.ExtraHeaders["x5t"], base64.RawURLEncoding.EncodeToString(s1[:]); got != want {
		t.Errorf("x5t = %v, want %s", got, want)
	}
	if got, want := header.ExtraHeaders["x5t#S256"], base64.RawURLEncoding.EncodeToString(s256[:]); got != want {
		t.Errorf("x5t#S256 = %v, want %s", got, want)
	}
}

// TestFreshJTI: every assertion has its own jti, and exp follows the clock.
func TestFreshJTI(t *testing.T) {
	now := sigNow
	e := Endpoint{Dialect: OAuth2, ClientID: "c", TokenURL: "https://idp.example/t", Key: &SigningKey{Signer: sigEC},
		Now: func() time.Time { return now }}
	seen := map[string]bool{}
	for i := range 50 {
		jws, err := e.assertion(true)
		if err != nil {
			t.Fatal(err)
		}
		_, claims := verifiedJWT(t, jws, &sigEC.PublicKey, ES256)
		if seen[jtiOf(claims)] {
			t.Fatalf("jti %s repeated", jtiOf(claims))
		}
		seen[jtiOf(claims)] = true
		if want := now.Add(90 * time.Second).Unix(); !sameClaim(claims["exp"], want) {
			t.Fatalf("assertion %d: exp = %v, want %d (now + 2m − 30s)", i, claims["exp"], want)
		}
		now = now.Add(time.Minute)
	}
}

// TestRedactSignedJWT: a provider that quotes an assertion back does not
// get it into an error message.
func TestRedactSignedJWT(t *testing.T) {
	e := Endpoint{Dialect: OAuth2, ClientID: "c", TokenURL: "https://idp.example/t", Key: &SigningKey{Signer: sigEC}}
	jws, err := e.assertion(true)
	if err != nil {
		t.Fatal(err)
	}
	if got := (*Redactor)(nil).Redact("bad assertion: " + jws + " (expired)"); strings.Contains(got, jws) || !strings.Contains(got, "(expired)") {
		t.Errorf("redact = %q, want the JWT removed and the rest kept", got)
	}
}
