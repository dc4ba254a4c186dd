package fakeprovider

import "time"

// PreviousTokenRevocation says whether issuing an access token ends access
// tokens the server issued before it (see SetPreviousTokenRevocation).
type PreviousTokenRevocation int

const (
	// PreviousTokensKept leaves every access token valid until it expires,
	// whatever is issued after it: RFC 6749's default, and the fake's.
	PreviousTokensKept PreviousTokenRevocation = iota
	// RevokePreviousOnRefresh makes redeeming a refresh token revoke the
	// access tokens issued with that refresh token's grant: by the grant
	// that started the chain (client credentials, authorization code, an
	// API key, a device code) and by every refresh since. ory/fosite, and
	// so Ory Hydra and Ory Network, do this when they rotate a refresh token
	// (fosite's refresh handler revokes the access tokens of the original
	// request id), as do GitHub's expiring user access tokens. Presenting a
	// refresh token that was already consumed (outside any grace) revokes
	// them too, as fosite's reuse detection does; unlike fosite, the fake
	// leaves the chain's newer refresh token redeemable.
	RevokePreviousOnRefresh
	// RevokePreviousOnNewToken keeps one active access token per client:
	// issuing a token to a client, by any grant, revokes every access token
	// issued earlier to that client (the same client id or API key on the
	// same dialect), whatever grant issued them.
	RevokePreviousOnNewToken
)

var previousTokenRevocationNames = []string{
	"kept",
	"on_refresh",
	"on_new_token",
}

// String is the mode's flag value: kept, on_refresh or on_new_token.
func (m PreviousTokenRevocation) String() string {
	return enumName(previousTokenRevocationNames, int(m), "PreviousTokenRevocation")
}

// SetPreviousTokenRevocation says whether issuing an access token ends the
// ones issued before it (PreviousTokensKept by default). The mode in force
// when a token is issued decides; tokens issued before a change are revoked
// by it like any others. A revoked token is refused by Valid and
// /api/whoami, and RevokedAt says when it was revoked. Revocation happens
// when the new token is issued: after Options.Latency, and also when
// FailDropAfterConsume loses the answer.
func (s *Server) SetPreviousTokenRevocation(m PreviousTokenRevocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.previousRevocation = m
}

// RevokedAt reports when accessToken was revoked, by Options.Now: a new
// token ended it under SetPreviousTokenRevocation, or it was revoked at
// PathRevoke, itself or with its refresh token (revoke.go). It reports false for a
// token that was never revoked, one that had expired before (an expired
// token is not revoked again), and one this server did not issue.
func (s *Server) RevokedAt(accessToken string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.access[accessToken]
	if !ok || rec.revoked.IsZero() {
		return time.Time{}, false
	}
	return rec.revoked, true
}

// RevokedTokens counts the access tokens revoked under
// SetPreviousTokenRevocation, or with their refresh token at PathRevoke,
// since the last Reset.
func (s *Server) RevokedTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokedCount
}

// newFamilyLocked starts a grant family: the tokens of one authorization,
// which a refresh token carries on. s.mu must be held.
func (s *Server) newFamilyLocked() uint64 {
	s.families++
	return s.families
}

// revokePreviousLocked revokes, at now, what issuing a token to client of d
// by grant in family ends under the current mode. It runs before the new
// token is stored. s.mu must be held.
func (s *Server) revokePreviousLocked(now time.Time, d Dialect, client, grant string, family uint64) {
	switch {
	case s.previousRevocation == RevokePreviousOnNewToken:
		s.revokeLocked(now, func(r accessRecord) bool { return r.dialect == d && r.client == client })
	case s.previousRevocation == RevokePreviousOnRefresh && grant == grantRefreshToken:
		s.revokeFamilyLocked(now, family)
	}
}

// revokeFamilyLocked revokes, at now, the live access tokens of family.
// s.mu must be held.
func (s *Server) revokeFamilyLocked(now time.Time, family uint64) {
	s.revokeLocked(now, func(r accessRecord) bool { return r.family == family })
}

// revokeLocked revokes, at now, every live access token that match selects.
// A linear scan: the fake holds few tokens, and none is scanned while the
// mode is PreviousTokensKept. s.mu must be held.
func (s *Server) revokeLocked(now time.Time, match func(accessRecord) bool) {
	for tok, rec := range s.access {
		if rec.revoked.IsZero() && now.Before(rec.expires) && match(rec) {
			rec.revoked = now
			s.access[tok] = rec
			s.revokedCount++
		}
	}
}
