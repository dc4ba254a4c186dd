package provider

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// compactJWS matches a JWS in compact form: three base64url parts, the first
// a JSON header ("eyJ" is the encoding of `{"`).
var compactJWS = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// maxDescription bounds what a provider's text may add to an error message.
const maxDescription = 300

// redact removes every secret from s, drops control characters and caps its
// length: provider text is untrusted and ends up in logs and API responses.
func redact(s string, secrets []string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	for _, secret := range secrets {
		if secret != "" {
			// Also the encoded form a provider may echo from a form or query.
			s = strings.ReplaceAll(s, secret, "[redacted]")
			s = strings.ReplaceAll(s, url.QueryEscape(secret), "[redacted]")
		}
	}
	// A signed JWT (an assertion a provider quotes back) works as a
	// credential until it expires.
	s = compactJWS.ReplaceAllString(s, "[redacted]")
	if len(s) > maxDescription {
		s = strings.ToValidUTF8(s[:maxDescription], "") + "…"
	}
	return s
}
