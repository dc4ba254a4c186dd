package fakeprovider

// Signed JWTs as the providers that take them check them: the signature
// (go-jose, against the public keys registered here, never a private key),
// the algorithm, aud, iat, exp and how far ahead it lies, a jti never seen
// before, and for Microsoft the certificate's x5t#S256. github.go,
// google.go, salesforce.go, microsoft.go and okta.go apply them with each
// provider's rules and answer in its error shape.

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The signing dialects the fake speaks, named as tokenbroker's configs name
// them.
const (
	GitHubApp            Dialect = "github_app"
	GoogleServiceAccount Dialect = "google"
	SalesforceJWT        Dialect = "salesforce_jwt"
	MicrosoftCertificate Dialect = "microsoft"
	OktaServiceApp       Dialect = "okta"
)

// Grant and assertion type names on the wire (RFC 7523).
const (
	grantJWTBearer      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// signedFlows holds the public keys the signing dialects verify with and
// the jti values they have seen.
type signedFlows struct {
	mu   sync.Mutex
	keys map[string][]assertionKey // by issuer (client id, client_email, consumer key, app id)
	jtis map[string]time.Time      // seen jti -> when it may be forgotten (its exp)
	// Salesforce users who approved a consumer: consumer key -> usernames.
	salesforceUsers map[string][]string
	// GitHub installations by id, and which ids an owner has.
	installations map[int64]*githubInstallation
	revocations   int
}

type assertionKey struct {
	kid     string // "" matches any kid
	pub     crypto.PublicKey
	x5tS256 string // the certificate's thumbprint, when registered as one
}

func (s *Server) registerSigned(mux *http.ServeMux) {
	s.signed.keys, s.signed.jtis = map[string][]assertionKey{}, map[string]time.Time{}
	s.signed.salesforceUsers, s.signed.installations = map[string][]string{}, map[int64]*githubInstallation{}
	s.registerGitHub(mux)
	mux.Handle("POST "+PathGoogleToken, s.tokenEndpoint(GoogleServiceAccount, s.handleGoogle))
	mux.Handle("POST "+PathSalesforceToken, s.tokenEndpoint(SalesforceJWT, s.handleSalesforce))
	mux.Handle("POST "+PathMicrosoftToken, s.tokenEndpoint(MicrosoftCertificate, s.handleMicrosoft))
	mux.Handle("POST "+PathOktaToken, s.tokenEndpoint(OktaServiceApp, s.handleOkta))
}

// AddAssertionKey registers pub as a key of the JWTs whose iss is issuer (a
// client id, a service account's client_email, a consumer key, an app id).
// kid, when set, must be the JWT's kid (Google's private_key_id).
func (s *Server) AddAssertionKey(issuer, kid string, pub crypto.PublicKey) {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	s.signed.keys[issuer] = append(s.signed.keys[issuer], assertionKey{kid: kid, pub: pub})
}

// AddAssertionCertificate registers a certificate (DER) of clientID's key,
// as Microsoft Entra does: client assertions name it by x5t#S256.
func (s *Server) AddAssertionCertificate(clientID string, der []byte) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("fakeprovider: certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	s.signed.keys[clientID] = append(s.signed.keys[clientID],
		assertionKey{pub: cert.PublicKey, x5tS256: base64.RawURLEncoding.EncodeToString(sum[:])})
	return nil
}

// RemoveAssertionKeys forgets every key of issuer, as when a key is revoked
// at the provider.
func (s *Server) RemoveAssertionKeys(issuer string) {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	delete(s.signed.keys, issuer)
}

// jwtRules are what one provider checks of a JWT.
type jwtRules struct {
	algs     []jose.SignatureAlgorithm
	audience string        // the aud it must carry ("": none checked)
	lifetime time.Duration // the most exp − iat may be (0: unchecked)
	ahead    time.Duration // the most exp − now may be (0: unchecked)
	jti      bool          // a jti is required and may never repeat
	kid      bool          // a kid is required and names the key
	x5tS256  bool          // an x5t#S256 header is required and names the certificate
	subject  bool          // a sub is required
}

// claimSet is what the fake reads of a verified JWT.
type claimSet struct {
	jwt.Claims
	Scope string `json:"scope"`
}

// errKey marks a JWT signed by no registered key: the client's key is
// unknown (as after a rotation at the provider).
var errKey = errors.New("the signature does not verify with any registered key")

// verifyJWT checks raw against r at the server's clock and returns its claims.
func (s *Server) verifyJWT(raw string, r jwtRules) (*claimSet, error) {
	tok, err := jwt.ParseSigned(raw, r.algs)
	if err != nil {
		return nil, fmt.Errorf("not a JWT signed with %v: %v", r.algs, err)
	}
	header := tok.Headers[0]
	x5t, _ := header.ExtraHeaders["x5t#S256"].(string)
	switch {
	case r.x5tS256 && x5t == "":
		return nil, errors.New("the x5t#S256 header is missing")
	case r.kid && header.KeyID == "":
		return nil, errors.New("the kid header is missing")
	}
	var unverified claimSet
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, fmt.Errorf("claims: %v", err)
	}
	var c claimSet
	s.signed.mu.Lock()
	keys := slices.Clone(s.signed.keys[unverified.Issuer])
	s.signed.mu.Unlock()
	verified := false
	for _, k := range keys {
		if (r.x5tS256 && k.x5tS256 != x5t) || (k.kid != "" && r.kid && k.kid != header.KeyID) {
			continue
		}
		if tok.Claims(k.pub, &c) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, errKey
	}
	return &c, s.checkClaims(&c, r)
}

// checkClaims applies r's time, audience, subject and replay rules.
func (s *Server) checkClaims(c *claimSet, r jwtRules) error {
	now := s.now()
	switch {
	case c.Expiry == nil || c.IssuedAt == nil:
		return errors.New("exp and iat are required")
	case !now.Before(c.Expiry.Time()):
		return errors.New("the JWT has expired")
	case c.IssuedAt.Time().After(now):
		return errors.New("iat is in the future")
	case c.NotBefore != nil && c.NotBefore.Time().After(now):
		return errors.New("nbf is in the future")
	case r.lifetime > 0 && c.Expiry.Time().Sub(c.IssuedAt.Time()) > r.lifetime:
		return fmt.Errorf("exp is more than %s after iat", r.lifetime)
	case r.ahead > 0 && c.Expiry.Time().Sub(now) > r.ahead:
		return fmt.Errorf("exp is more than %s in the future", r.ahead)
	case r.audience != "" && !c.Audience.Contains(r.audience):
		return fmt.Errorf("aud %v is not %s", []string(c.Audience), r.audience)
	case r.subject && c.Subject == "":
		return errors.New("sub is required")
	case r.jti && c.ID == "":
		return errors.New("jti is required")
	}
	if !r.jti {
		return nil
	}
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	for id, until := range s.signed.jtis {
		if now.After(until) {
			delete(s.signed.jtis, id)
		}
	}
	if _, seen := s.signed.jtis[c.ID]; seen {
		return errors.New("the jti was used before")
	}
	s.signed.jtis[c.ID] = c.Expiry.Time()
	return nil
}

// selfURL is the URL the request was sent to, as a client names it in aud.
func (s *Server) selfURL(r *http.Request) string { return s.URL() + r.URL.Path }

// scopeList splits a space-delimited scope.
func scopeList(scope string) []string { return strings.Fields(scope) }
