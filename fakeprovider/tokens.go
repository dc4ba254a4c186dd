package fakeprovider

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

type accessRecord struct {
	dialect Dialect
	client  string
	scope   string
	expires time.Time
	// family is the grant family: the authorization whose refresh tokens
	// issued this token (revocation.go).
	family uint64
	// revoked is when a newer token ended this one
	// (SetPreviousTokenRevocation); zero while it was not.
	revoked time.Time
	// aud: the resources and audiences it was issued for (RFC 8707, RFC
	// 8693), sorted; nil for the server's default.
	aud []string
}

// Valid reports whether accessToken was issued by this server, has not
// expired by the server's clock and was not revoked
// (SetPreviousTokenRevocation).
func (s *Server) Valid(accessToken string) bool {
	_, ok := s.lookupAccess(accessToken)
	return ok
}

func (s *Server) lookupAccess(token string) (accessRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.access[token]
	if !ok || !s.now().Before(rec.expires) || !rec.revoked.IsZero() {
		return accessRecord{}, false
	}
	return rec, true
}

// lifetimeLocked is the access token lifetime for d. s.mu must be held.
func (s *Server) lifetimeLocked(d Dialect) time.Duration {
	switch {
	case s.lifetime > 0:
		return s.lifetime
	case d == Endorsed:
		return 1209600 * time.Second // Endorsed's documented "expires_in": "1209600"
	default:
		return time.Hour
	}
}

// wholeSeconds is a lifetime as announced: whole seconds, at least 1. Tokens
// expire exactly that many seconds after issue, so the fake enforces what it
// reports.
func wholeSeconds(d time.Duration) int {
	return max(int(d/time.Second), 1)
}

// issued is the result of a successful grant.
type issued struct {
	access    string
	refresh   string // "" when the dialect issues none
	expiresIn int    // seconds, as reported and enforced
	scope     string // space-delimited
	// refreshExpiry announces the refresh token's lifetime when the server
	// was told to (SetRefreshTokenLifetime).
	refreshExpiry refreshExpiry
}

func (s *Server) issue(d Dialect, client, scope, grant string, withRefresh bool) issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(d, client, scope, grant, withRefresh, s.newFamilyLocked())
}

// issueLocked is the one place that issues an access token (and a refresh
// token with it when withRefresh is set): for client of d, by grant, in
// grant family (a new one for every grant but a refresh). Tokens that the
// new one ends under SetPreviousTokenRevocation are revoked first. s.mu must
// be held.
func (s *Server) issueLocked(d Dialect, client, scope, grant string, withRefresh bool, family uint64) issued {
	return s.issueForLocked(d, client, target{scope: scope, refreshScope: scope}, grant, withRefresh, family)
}

// target is what an issue is for: the access token's scope and audiences,
// and the refresh token's, which a refresh keeps (RFC 6749 §6: "the
// refresh token scope MUST be identical to that of the refresh token
// included by the client in the request").
type target struct {
	scope, refreshScope string
	aud, refreshAud     []string
}

// issueForLocked is issueLocked for t. s.mu must be held.
func (s *Server) issueForLocked(d Dialect, client string, t target, grant string, withRefresh bool, family uint64) issued {
	now := s.now()
	s.revokePreviousLocked(now, d, client, grant, family)
	secs := wholeSeconds(s.lifetimeLocked(d))
	out := issued{access: s.newAccessToken(), expiresIn: secs, scope: t.scope}
	s.access[out.access] = accessRecord{
		dialect: d,
		client:  client,
		scope:   t.scope,
		expires: now.Add(time.Duration(secs) * time.Second),
		family:  family,
		aud:     t.aud,
	}
	if withRefresh {
		out.refresh, out.refreshExpiry = s.newRefreshLocked(d, client, t.refreshScope, family)
		s.refresh[out.refresh].aud = t.refreshAud
	}
	s.grants[grant]++
	s.issuedFor[targetKey(t.scope, t.aud)]++
	return out
}

// newToken returns prefix + 32 random bytes, base64url.
func newToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// accessTokenSizes holds the size set by SetAccessTokenSize, by server. It
// lives here rather than in Server so the option stays in this file; a
// server that never sets one has no entry.
var accessTokenSizes sync.Map // *Server -> int

// SetAccessTokenSize makes the access tokens issued from now on n bytes long
// and shaped like a JWT, as real providers issue them (often 1-2 KB): three
// base64url parts (a fixed header, a random payload, a random 32-byte
// "signature") joined by dots. They are opaque to the fake like its short
// ones (Valid looks them up; nothing parses them). n <= 0 restores the
// default "at_" + 43 characters; n is raised to the shortest JWT-like token
// (about 100 bytes).
func (s *Server) SetAccessTokenSize(n int) {
	if n <= 0 {
		accessTokenSizes.Delete(s)
		return
	}
	accessTokenSizes.Store(s, n)
}

// jwtHeader is the base64url of {"alg":"RS256","typ":"JWT"}.
const jwtHeader = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"

// newAccessToken is a new access token: the default short one, or a
// JWT-like one of the size SetAccessTokenSize set.
func (s *Server) newAccessToken() string {
	v, ok := accessTokenSizes.Load(s)
	if !ok {
		return newToken("at_")
	}
	return jwtLike(v.(int))
}

// jwtLike returns a random JWT-shaped token of n bytes (at least enough for
// the header, a 16-byte payload and a 32-byte signature). Every part decodes
// as base64url: a payload length of 1 mod 4, which would not, gives its
// last character to the signature (33 bytes then).
func jwtLike(n int) string {
	sigBytes := 32
	payload := max(n-len(jwtHeader)-base64.RawURLEncoding.EncodedLen(sigBytes)-2, base64.RawURLEncoding.EncodedLen(16))
	if payload%4 == 1 {
		payload, sigBytes = payload-1, 33
	}
	raw := make([]byte, (payload*6+7)/8+sigBytes)
	_, _ = rand.Read(raw)
	body := raw[:len(raw)-sigBytes]
	return jwtHeader + "." + base64.RawURLEncoding.EncodeToString(body)[:payload] + "." +
		base64.RawURLEncoding.EncodeToString(raw[len(body):])
}
