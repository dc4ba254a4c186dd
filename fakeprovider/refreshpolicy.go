package fakeprovider

import (
	"time"
)

// RefreshExpiryField says which response field, if any, announces a refresh
// token's lifetime (see SetRefreshTokenLifetime). RFC 6749 defines none.
type RefreshExpiryField int

const (
	// NoRefreshExpiryField enforces the lifetime without announcing it, as
	// most providers do.
	NoRefreshExpiryField RefreshExpiryField = iota
	// RefreshTokenExpiresIn announces it as "refresh_token_expires_in"
	// (seconds), as GitHub does for expiring user access tokens
	// (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens).
	RefreshTokenExpiresIn
	// XRefreshTokenExpiresIn announces it as "x_refresh_token_expires_in"
	// (seconds), as Intuit (QuickBooks Online) does
	// (https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0).
	XRefreshTokenExpiresIn
)

var refreshExpiryFieldNames = []string{
	"none",
	"refresh_token_expires_in",
	"x_refresh_token_expires_in",
}

// String is the field's JSON name, or "none".
func (f RefreshExpiryField) String() string {
	return enumName(refreshExpiryFieldNames, int(f), "RefreshExpiryField")
}

// refreshExpiry is embedded in token responses; at most one field is set.
type refreshExpiry struct {
	RefreshTokenExpiresIn  int `json:"refresh_token_expires_in,omitempty"`
	XRefreshTokenExpiresIn int `json:"x_refresh_token_expires_in,omitempty"`
}

func newRefreshExpiry(f RefreshExpiryField, secs int) refreshExpiry {
	switch f {
	case RefreshTokenExpiresIn:
		return refreshExpiry{RefreshTokenExpiresIn: secs}
	case XRefreshTokenExpiresIn:
		return refreshExpiry{XRefreshTokenExpiresIn: secs}
	}
	return refreshExpiry{}
}

// SetRefreshTokenLifetime makes refresh tokens issued or seeded from now on
// expire d after issue (by Options.Now; whole seconds, at least 1), and
// announces the lifetime in field. An expired refresh token is refused in the
// dialect's refusal shape (SetRefreshRefusal), and presenting it again counts
// as a reuse. d <= 0 restores the default: refresh tokens never expire (as
// Echo360 documents) and nothing is announced.
func (s *Server) SetRefreshTokenLifetime(d time.Duration, field RefreshExpiryField) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLifetime, s.refreshExpiryField = d, field
}

// SetRefreshReuseGrace lets a refresh token that a refresh has rotated out be
// presented again for d after that refresh: each such presentation succeeds
// with fresh tokens (a new access token and a new refresh token; the tokens of
// the first refresh stay valid, unless SetPreviousTokenRevocation makes a
// refresh end them) and counts in RefreshGraceReuses, not in
// RefreshReuses. After d, or with d <= 0 (the default), a rotated token is
// refused and counted as a reuse.
//
// Real providers do this so a client that lost a refresh response can retry:
// Xero accepts the previous refresh token for 30 minutes after it was used
// (https://developer.xero.com/documentation/guides/oauth2/auth-flow/), and
// Okta's refresh token rotation has a grace period ("leeway") of 0 to 60
// seconds, 30 by default
// (https://developer.okta.com/docs/guides/refresh-tokens/main/#refresh-token-rotation).
// The grace never covers a token that was refused rather than rotated.
func (s *Server) SetRefreshReuseGrace(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reuseGrace = d
}

// inReuseGraceLocked reports whether consumed token rec may be used again at
// now. s.mu must be held.
func (s *Server) inReuseGraceLocked(rec *refreshRecord, now time.Time) bool {
	return s.reuseGrace > 0 && !rec.rotated.IsZero() && now.Before(rec.rotated.Add(s.reuseGrace))
}
