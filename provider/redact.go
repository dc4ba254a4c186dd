package provider

import (
	"net/url"
	"strings"
	"unicode"
)

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
	if len(s) > maxDescription {
		s = strings.ToValidUTF8(s[:maxDescription], "") + "…"
	}
	return s
}
