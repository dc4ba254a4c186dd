package provider

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// IDTokenExpiry is when an ID token says it expires (its exp claim, OpenID
// Connect Core §2), read without verifying it: a hint for whether the token
// is still worth presenting (as an RFC 8693 subject token, which the
// provider verifies), never a claim to trust. ok is false for a token that
// is not a compact JWS with a numeric exp.
func IDTokenExpiry(idToken string) (exp time.Time, ok bool) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	secs, err := claims.Exp.Float64()
	if err != nil || secs <= 0 || secs > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(secs), 0), true
}
