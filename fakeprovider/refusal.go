package fakeprovider

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// RefusalShape is how a dialect answers a refresh token it will not redeem:
// unknown, already used, expired, issued to another client, or refused on
// purpose by RefuseRefreshes. Real providers differ, and a client must heal
// from each shape (mint with its base grant) without sending the token again.
type RefusalShape int

const (
	// RefuseDefault is the dialect's own shape: RefuseProblemJSON for
	// api.video, RefuseInvalidGrant for oauth2, oauth2_json and echo360.
	RefuseDefault RefusalShape = iota
	// RefuseInvalidGrant answers 400 {"error":"invalid_grant"}, as RFC 6749
	// §5.2 prescribes for an invalid, expired or revoked refresh token.
	RefuseInvalidGrant
	// RefuseInvalidRequest answers 400 {"error":"invalid_request"}.
	RefuseInvalidRequest
	// RefuseInvalidToken answers 401 {"error":"invalid_token"} with
	// WWW-Authenticate: Bearer error="invalid_token" (the RFC 6750 code, which
	// some servers use for refresh tokens too).
	RefuseInvalidToken
	// RefuseUnsupportedGrantType answers 400 {"error":"unsupported_grant_type"}.
	RefuseUnsupportedGrantType
	// RefuseErrorIn200 answers HTTP 200 with {"error":"bad_refresh_token",
	// "error_description":…,"error_uri":…}, as GitHub's OAuth token endpoint
	// does: an error inside a success status.
	RefuseErrorIn200
	// RefusePlainText403 answers 403 with Content-Type text/plain and the body
	// "Forbidden", as a gateway in front of the provider does.
	RefusePlainText403
	// RefuseProblemJSON answers 400 application/problem+json (RFC 7807) in
	// api.video's shape {type, title, status, name}, as api.video's API
	// reference (https://docs.api.video/reference/api/Advanced-authentication)
	// documents for its authentication endpoints.
	RefuseProblemJSON
)

var refusalShapeNames = []string{
	"RefuseDefault",
	"RefuseInvalidGrant",
	"RefuseInvalidRequest",
	"RefuseInvalidToken",
	"RefuseUnsupportedGrantType",
	"RefuseErrorIn200",
	"RefusePlainText403",
	"RefuseProblemJSON",
}

// String names the shape as its constant does.
func (r RefusalShape) String() string { return enumName(refusalShapeNames, int(r), "RefusalShape") }

// revokes reports whether a provider answering in shape r has declared the
// token itself dead (invalid_grant, invalid_token, bad_refresh_token,
// api.video's "expired or invalid"), so a forced refusal in that shape
// consumes the token. The other shapes (invalid_request,
// unsupported_grant_type, a gateway's 403) say nothing about the token: it
// stays redeemable.
func (r RefusalShape) revokes() bool {
	switch r {
	case RefuseInvalidGrant, RefuseInvalidToken, RefuseErrorIn200, RefuseProblemJSON:
		return true
	}
	return false
}

// SetRefreshRefusal sets how dialect d refuses a refresh token it will not
// redeem; RefuseDefault restores d's own shape. It has no effect on
// endorsed, which has no refresh grant, nor on oauth2_json, which refuses
// every refresh with unsupported_grant_type.
func (s *Server) SetRefreshRefusal(d Dialect, shape RefusalShape) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals[d] = shape
}

// refusalLocked is the shape in which d refuses, never RefuseDefault. s.mu
// must be held.
func (s *Server) refusalLocked(d Dialect) RefusalShape {
	switch {
	case s.refusals[d] != RefuseDefault:
		return s.refusals[d]
	case d == APIVideo:
		return RefuseProblemJSON
	default:
		return RefuseInvalidGrant
	}
}

// RefuseRefreshes makes the next n refresh-grant requests that present a
// refresh token (grant_type=refresh_token to oauth2 or echo360, or POST
// /auth/refresh to api.video), whatever dialect and in arrival order, be
// refused in shape even when the token is valid; RefuseDefault means each
// dialect's configured shape. Base-grant requests (client credentials, API
// key) are not affected, so a test can check that the client then mints
// through its base grant. Calls queue up like Fail's, and ClearFailures
// cancels them. n must be at least 1: RefuseRefreshes panics otherwise.
//
// The refused token is consumed when the shape says it is dead (invalid_grant,
// invalid_token, bad_refresh_token, api.video's problem); otherwise
// (invalid_request, unsupported_grant_type, a gateway's 403) it stays
// redeemable. Either way, presenting it again counts in RefreshReuses.
// Requests refused earlier, for a malformed body or failed client
// authentication, do not use up a forced refusal; nor do injected failures
// (Fail), which are answered before the dialect sees the request.
func (s *Server) RefuseRefreshes(n int, shape RefusalShape) {
	if n <= 0 {
		panic(fmt.Sprintf("fakeprovider: RefuseRefreshes(%d, %v): n must be at least 1", n, shape))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forcedRefusals.push(shape, n)
}

// refusal is redeem's error: why the token was refused and the shape to say
// it in.
type refusal struct {
	shape RefusalShape
	why   error
}

func (r *refusal) Error() string { return r.why.Error() }
func (r *refusal) Unwrap() error { return r.why }

const refusalDescription = "the refresh token is invalid, expired, revoked, already used or issued to another client"

// writeRefusal answers a refresh that redeem refused. An error that is not a
// *refusal is answered as invalid_grant.
func writeRefusal(w http.ResponseWriter, err error) {
	shape := RefuseInvalidGrant
	var r *refusal
	if errors.As(err, &r) {
		shape = r.shape
	}
	switch shape {
	case RefuseInvalidRequest:
		oauthError(w, http.StatusBadRequest, "invalid_request", refusalDescription, false)
	case RefuseInvalidToken:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", refusalDescription, false)
	case RefuseUnsupportedGrantType:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "the refresh_token grant is not available", false)
	case RefuseErrorIn200:
		writeJSON(w, http.StatusOK, contentTypeJSON, map[string]string{
			"error":             "bad_refresh_token",
			"error_description": "The refresh token passed is incorrect or expired.",
			"error_uri":         "https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens",
		})
	case RefusePlainText403:
		const body = "Forbidden"
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(body))
	case RefuseProblemJSON:
		apiVideoError(w, http.StatusBadRequest, "authentication-invalid-refresh-token", "The refresh token is either expired or invalid.", "refreshToken")
	default: // RefuseInvalidGrant
		oauthError(w, http.StatusBadRequest, "invalid_grant", refusalDescription, false)
	}
}
