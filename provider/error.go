package provider

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Class is what a failed exchange means for what was sent. Every provider
// answer is a success or exactly one of these.
type Class int

const (
	// Temporary: an outage (5xx, 429, 408, a gateway's HTML page, or a
	// connection that failed before the request was written). Nothing was
	// spent: the same refresh token may be sent again later.
	Temporary Class = iota + 1
	// Lost: the request was written and no answer came (a dropped
	// connection, a timeout). A refresh token it carried may be spent.
	Lost
	// Refused: any other answer that is not a token: a 4xx, a 3xx, or a 2xx
	// carrying an error or no usable token. What was sent will not work.
	Refused
)

func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case Lost:
		return "lost"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Error is a failed exchange: a provider's refusal, an unusable answer, or
// none. Its message never carries a secret: descriptions are cleaned of the
// credentials that were sent.
type Error struct {
	Class       Class
	Status      int    // HTTP status; 0 when no response arrived
	Code        string // OAuth error code (RFC 6749 §5.2) or the provider's equivalent
	Description string
	RetryAfter  time.Duration // from a Retry-After header (429/503)
	// NarrowingRefused: the provider refused what the request's narrowing
	// asked (Client.Send): invalid_scope (RFC 6749 §5.2), invalid_target
	// (RFC 8707 §2, RFC 8693 §2.2.2), GitHub's 422 to an installation token
	// narrowed to repositories or permissions, or the dialect's own words
	// for it. It says the target is refused, not that the credentials sent
	// (a refresh token, a subject token) are spent: the chain is not lost.
	NarrowingRefused bool
}

// noteNarrowing marks err as a refusal of in's narrowing when it is one.
func noteNarrowing(e *Endpoint, in TokenRequest, err error) error {
	pe, ok := err.(*Error)
	if !ok || pe.Class != Refused || pe.Status == 0 || in.Narrowing == nil || in.Narrowing.IsZero() {
		return err
	}
	switch {
	case pe.Code == "invalid_scope" || pe.Code == "invalid_target":
		pe.NarrowingRefused = true
	case e.row().assertion.appJWT && pe.Status == 422:
		pe.NarrowingRefused = true // "Validation failed, or the endpoint has been spammed."
	default:
		for _, words := range e.row().narrowRefusals {
			if strings.HasPrefix(pe.Description, words) {
				pe.NarrowingRefused = true
			}
		}
	}
	return err
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("provider")
	if e.Status != 0 {
		fmt.Fprintf(&b, " returned HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	return b.String()
}

// classOf classifies an HTTP answer that carried no usable token.
func classOf(status int) Class {
	if status >= 500 || status == 429 || status == 408 {
		return Temporary
	}
	return Refused
}

// maxDescription bounds what a provider's text may add to a message.
const maxDescription = 300

// CleanText makes text from a provider (or from a redirect it sent) fit to
// show to people and to log: control characters (C0, DEL, C1), Unicode's
// line and paragraph separators and the bidirectional formatting characters
// become spaces, invalid UTF-8 becomes U+FFFD, surrounding space goes, and it
// is cut to maxDescription bytes (with "…" when cut).
//
// The result is plain text, never HTML: '<', '>' and '&' stay, since they
// carry meaning in a message ("must be <= 3600") and do nothing in a JSON
// API answer, a log line or a terminal. Where text lands in an HTML page, the
// page escapes it (html/template, as the callback page does).
//
// CleanText removes no credential: provider answers to a request go through
// that request's Redactor, which also cleans.
func CleanText(s string) string { return bound(cleanRunes(s), false) }

// cleanRunes replaces, rune for rune, what could move a terminal's cursor,
// end a log line, or reorder what a reader sees (Unicode Technical Report #36
// §2.1) with a space. Runes map to runes, so an occurrence of a string in s is
// an occurrence of its cleaned form in cleanRunes(s).
func cleanRunes(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
			return ' '
		}
		return r
	}, s)
}

// bidiControl reports whether r is one of Unicode's bidirectional formatting
// characters (Unicode Standard Annex #9 §2).
func bidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' || ('\u202a' <= r && r <= '\u202e') || ('\u2066' <= r && r <= '\u2069')
}

// bound trims s's surrounding space and cuts it to maxDescription bytes on a
// rune boundary; "…" marks a cut, or, with cut, text left out before.
func bound(s string, cut bool) string {
	if len(s) > maxDescription {
		s, cut = s[:maxDescription], true
	}
	s = strings.TrimSpace(strings.ToValidUTF8(s, ""))
	if cut {
		s += "…"
	}
	return s
}
