package provider

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as the SHA-1 thumbprint (RFC 7515 §4.1.7)
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Signed JWTs (RFC 7523): the assertion of the JWT-bearer grant (§2.1,
// grant_jwt_bearer.go), the client assertion of private_key_jwt (§2.2,
// auth_private_key_jwt.go) and a GitHub App's JWT (grant_github_app.go).
// go-jose builds and signs them; this file decides what they claim.

// The signature algorithms a key may sign with (RFC 7518 §3.1).
const (
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
	PS256 = "PS256" // RSASSA-PSS with SHA-256, salt as long as the hash
	ES256 = "ES256" // ECDSA P-256 with SHA-256
)

// Assertion defaults and bounds.
const (
	DefaultAssertionTTL = 2 * time.Minute
	MinAssertionTTL     = 30 * time.Second
	MaxAssertionTTL     = time.Hour
	// assertionBackdate: iat lies this far in the past, so a provider whose
	// clock runs behind ours does not see a JWT from the future.
	assertionBackdate = 30 * time.Second
)

// SigningKey is a private key held by the caller. This package only asks it
// to sign (crypto.Signer): the key's bytes never pass through here.
type SigningKey struct {
	Signer crypto.Signer
	// Algorithm is RS256, PS256 or ES256; "" picks the dialect's default
	// for the key's type.
	Algorithm string
	// KeyID is the kid header ("" sends none).
	KeyID string
	// Certificate is the key's X.509 certificate (DER), when known: its
	// thumbprints go in the x5t and x5t#S256 headers (RFC 7515 §4.1.7-8).
	Certificate []byte
}

// Assertion says what the assertions of an endpoint claim beyond the
// dialect's defaults; "" fields and a zero TTL take those defaults.
type Assertion struct {
	Issuer, Subject, Audience string
	TTL                       time.Duration // exp − iat
	Claims                    map[string]any
}

// assertionRules are what a dialect's provider documents about the JWTs it
// accepts; the zero value is RFC 7523's.
type assertionRules struct {
	// algs are the accepted algorithms (nil: all three); rsaAlg is the
	// default for an RSA key ("": RS256).
	algs   []string
	rsaAlg string
	// backdate replaces assertionBackdate; maxTTL bounds exp − iat.
	backdate, maxTTL time.Duration
	// appJWT: a GitHub App JWT, with iss, iat and exp only.
	appJWT bool
	// noSubject: sub only when configured (Google: domain-wide delegation).
	noSubject bool
	// scopeClaim: the scopes go in the assertion's scope claim, not in
	// the request (Google).
	scopeClaim bool
	// audience derives the default aud from the endpoint ("": token URL).
	audience func(e *Endpoint) string
	// x5tS256: a client assertion must carry the certificate's x5t#S256
	// (Microsoft identifies the credential by it).
	x5tS256 bool
	// subject: the grant's sub must be configured (Salesforce: the user).
	subject bool
}

// reservedClaims are set by the assertion itself; extra claims may not replace them.
var reservedClaims = map[string]bool{"iss": true, "sub": true, "aud": true, "iat": true, "exp": true, "nbf": true, "jti": true}

// ReservedClaim reports whether an extra claim named key would replace one the assertion sets.
func ReservedClaim(key string) bool { return key == "" || reservedClaims[key] }

// KeyAlgorithms lists the algorithms a public key can sign with.
func KeyAlgorithms(pub crypto.PublicKey) []string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return []string{RS256, PS256}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return []string{ES256}
		}
	}
	return nil
}

// AcceptedAlgorithms lists the algorithms the dialect's provider accepts.
func (e *Endpoint) AcceptedAlgorithms() []string {
	if algs := e.row().assertion.algs; algs != nil {
		return algs
	}
	return []string{RS256, PS256, ES256}
}

// SigningAlgorithm is the algorithm the endpoint's key signs with: its own,
// else the dialect's default for its type. "" when no key is held.
func (e *Endpoint) SigningAlgorithm() string {
	switch {
	case e.Key == nil:
		return ""
	case e.Key.Algorithm != "":
		return e.Key.Algorithm
	}
	if _, isRSA := e.Key.Signer.Public().(*rsa.PublicKey); isRSA {
		if alg := e.row().assertion.rsaAlg; alg != "" {
			return alg
		}
		return RS256
	}
	return ES256
}

// KeyNeedsCertificate reports whether the provider identifies a client's
// key by its certificate (Microsoft: x5t#S256).
func (e *Endpoint) KeyNeedsCertificate() bool { return e.row().assertion.x5tS256 }

// MaxAssertionTTL is the longest assertion lifetime the provider accepts.
func (e *Endpoint) MaxAssertionTTL() time.Duration {
	if m := e.row().assertion.maxTTL; m > 0 {
		return m
	}
	return MaxAssertionTTL
}

// AssertionTTL is exp − iat of the endpoint's assertions.
func (e *Endpoint) AssertionTTL() time.Duration {
	ttl := e.Assertion.TTL
	if ttl <= 0 {
		ttl = DefaultAssertionTTL
	}
	return min(ttl, e.MaxAssertionTTL())
}

// AssertionIssuer is the grant assertion's iss: the configured one, else the
// client id (a GitHub App's JWT: the app id).
func (e *Endpoint) AssertionIssuer() string {
	switch {
	case e.Assertion.Issuer != "":
		return e.Assertion.Issuer
	case e.row().assertion.appJWT && e.Installation != nil:
		return e.Installation.AppID
	}
	return e.ClientID
}

// AssertionAudience is the assertions' aud: the configured one, else the
// dialect's, else the token URL (RFC 7523 §3).
func (e *Endpoint) AssertionAudience() string {
	switch {
	case e.Assertion.Audience != "":
		return e.Assertion.Audience
	case e.row().assertion.audience != nil:
		return e.row().assertion.audience(e)
	}
	return e.EffectiveTokenURL()
}

// AssertionSubject is the grant assertion's sub: the configured one, else the
// client id, unless the dialect sends sub only when configured or needs one
// configured (Salesforce's user).
func (e *Endpoint) AssertionSubject() string {
	if r := e.row().assertion; e.Assertion.Subject != "" || r.noSubject || r.subject {
		return e.Assertion.Subject
	}
	return e.ClientID
}

// signed stands in a request's parameters for a JWT that assemble signs at
// the last moment, so each request carries a fresh one.
type signed struct {
	// client: a client assertion (iss = sub = client id), not a grant's.
	client bool
}

// signAssertions replaces every signed placeholder in params with a JWT.
func (e *Endpoint) signAssertions(params []param) ([]param, error) {
	for i, p := range params {
		s, ok := p.value.(signed)
		if !ok {
			continue
		}
		jws, err := e.assertion(s.client)
		if err != nil {
			return nil, err
		}
		params[i].value = jws
	}
	return params, nil
}

// assertion signs one assertion now. A client assertion names the client
// as iss and sub (RFC 7523 §3, OpenID Connect Core §9); a grant's names
// whom the token is for.
func (e *Endpoint) assertion(client bool) (string, error) {
	rules := e.row().assertion
	backdate := assertionBackdate
	if rules.backdate > 0 {
		backdate = rules.backdate
	}
	iat := e.now().Add(-backdate).Truncate(time.Second)
	claims := map[string]any{}
	for k, v := range e.Assertion.Claims {
		if !ReservedClaim(k) {
			claims[k] = v
		}
	}
	claims["iat"] = iat.Unix()
	claims["exp"] = iat.Add(e.AssertionTTL()).Unix()
	switch {
	case rules.appJWT: // GitHub documents iss, iat and exp only
		claims["iss"] = e.AssertionIssuer()
	case client:
		claims["iss"], claims["sub"] = e.ClientID, e.ClientID
	default:
		claims["iss"] = e.AssertionIssuer()
		if sub := e.AssertionSubject(); sub != "" {
			claims["sub"] = sub
		}
		if rules.scopeClaim && len(e.Scopes) > 0 {
			claims["scope"] = strings.Join(e.Scopes, " ")
		}
	}
	if !rules.appJWT {
		claims["aud"] = e.AssertionAudience()
		claims["jti"] = newJTI()
	}
	return e.sign(claims)
}

// sign returns claims as a compact JWS signed by the endpoint's key, with
// the typ, kid and certificate thumbprint headers.
func (e *Endpoint) sign(claims map[string]any) (string, error) {
	k := e.Key
	if k == nil || k.Signer == nil {
		return "", fmt.Errorf("no signing key")
	}
	alg := e.SigningAlgorithm()
	if !slices.Contains(KeyAlgorithms(k.Signer.Public()), alg) {
		return "", fmt.Errorf("the signing key cannot sign %s", alg)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.KeyID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), k.KeyID)
	}
	if len(k.Certificate) > 0 {
		sha1Sum, sha256Sum := sha1.Sum(k.Certificate), sha256.Sum256(k.Certificate) //nolint:gosec
		opts = opts.WithHeader("x5t", base64.RawURLEncoding.EncodeToString(sha1Sum[:])).
			WithHeader("x5t#S256", base64.RawURLEncoding.EncodeToString(sha256Sum[:]))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: joseKey(k.Signer)}, opts)
	if err != nil {
		return "", fmt.Errorf("signing an assertion: %w", err)
	}
	jws, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing an assertion: %w", err)
	}
	return jws, nil
}

// joseKey hands go-jose a key it signs with natively (PS256 with a salt as
// long as the hash, as RFC 7518 §3.5 requires), or any other signer as an
// opaque one.
func joseKey(s crypto.Signer) any {
	switch k := s.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
		return k
	}
	return cryptosigner.Opaque(s)
}

// newJTI is a fresh 128-bit random JWT ID (RFC 7519 §4.1.7): never reused.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// now is the endpoint's clock.
func (e *Endpoint) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}
