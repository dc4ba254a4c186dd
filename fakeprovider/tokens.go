package fakeprovider

import (
	"crypto/rand"
	"encoding/base64"
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
	now := s.now()
	s.revokePreviousLocked(now, d, client, grant, family)
	secs := wholeSeconds(s.lifetimeLocked(d))
	out := issued{access: newToken("at_"), expiresIn: secs, scope: scope}
	s.access[out.access] = accessRecord{
		dialect: d,
		client:  client,
		scope:   scope,
		expires: now.Add(time.Duration(secs) * time.Second),
		family:  family,
	}
	if withRefresh {
		out.refresh, out.refreshExpiry = s.newRefreshLocked(d, client, scope, family)
	}
	s.grants[grant]++
	return out
}

// newToken returns prefix + 32 random bytes, base64url.
func newToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}
