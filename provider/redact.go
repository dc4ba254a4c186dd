package provider

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// compactJWS matches a JWS in compact form: three base64url parts, the first
// a JSON header ("eyJ" is the encoding of `{"`).
var compactJWS = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// redacted replaces every credential found in text.
const redacted = "[redacted]"

// Redactor removes the credentials of one request from text that may reach
// a person or a log: errors, status, logs, pages. A provider may echo what it
// was sent, in the encoding we sent it or in one of its own, so each
// credential is searched for raw and in every form a request or an echo
// gives it, and in those forms applied twice (an echo of a JSON body inside a
// JSON string):
//   - percent-encoding: form and query (url.QueryEscape, '+' for a space, and
//     the same with "%20" or lowercase hex), a path segment (url.PathEscape),
//     JavaScript's encodeURIComponent and the WHATWG/Java form serializer;
//   - JSON string escaping as encoders write it (RFC 8259 §7): with or without
//     the HTML escapes \u003c \u003e \u0026 (Go's default), with or without
//     "\/", with non-ASCII as \uXXXX (ensure_ascii) or raw, U+2028 and
//     U+2029 escaped or not, hex in either case, \b and \f short or as
//     \u0008 and \u000c, invalid UTF-8 as \ufffd;
//   - HTTP Basic (RFC 7617 §2): base64 (standard and URL alphabet, padding
//     ignored) of "id:secret", raw and with each piece percent-encoded first
//     as RFC 6749 §2.3.1 asks.
//
// A signed JWT (an assertion the request carried, quoted back) is removed
// too: it works as a credential until it expires.
//
// Every form is also searched for without surrounding space, as a provider
// or a message may trim it. Matches are all found before anything is
// replaced, then merged, so one credential that contains another, or
// overlaps it, is removed whole whatever the order. Text is cleaned like
// CleanText first (the credentials' forms too, so a control character turned
// into a space still matches), then bounded; a credential the cut goes
// through is removed whole.
//
// A nil *Redactor removes signed JWTs only. The forms are computed at the
// first Redact: a request that succeeds never pays for them.
type Redactor struct {
	atoms []string // the credentials, and the Basic credentials' base64 forms

	compute sync.Once
	needles []string // every form of every atom, cleaned
	longest int
}

// Redactor returns the redactor of one request to e that carries secrets
// besides e's own (a refresh token, an authorization code, a PKCE verifier,
// a device code, an access token). e's client secret and API key are always
// included, with the HTTP Basic credentials of its client. e may be nil.
func (e *Endpoint) Redactor(secrets ...string) *Redactor {
	r := &Redactor{}
	if e != nil {
		r.add(e.ClientSecret, e.APIKey)
		if e.ClientSecret != "" {
			r.add(basicForms(e.ClientID, e.ClientSecret)...)
		}
	}
	r.add(secrets...)
	return r
}

func (r *Redactor) add(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			r.atoms = append(r.atoms, s)
		}
	}
}

// Redact returns s without any form of the request's credentials or a signed
// JWT, without control characters, at most maxDescription bytes of it.
func (r *Redactor) Redact(s string) string {
	s = cleanRunes(s)
	needles, longest := r.forms()
	// At most maxDescription bytes are shown, from the first searchText
	// bytes of s (credentials removed from them may make room). A credential
	// that starts among those ends within longest bytes more: that is all
	// there is to search.
	window, shown := s, len(s)
	if len(s) > searchText+longest {
		window, shown = s[:searchText+longest], searchText
	}
	covered := make([]bool, len(window))
	cover := func(from, to int) {
		for i := from; i < to; i++ {
			covered[i] = true
		}
	}
	for _, n := range needles {
		for at := 0; at < len(window); {
			i := strings.Index(window[at:], n)
			if i < 0 {
				break
			}
			cover(at+i, at+i+len(n))
			at += i + 1 // overlapping occurrences too
		}
	}
	for _, m := range compactJWS.FindAllStringIndex(window, -1) {
		cover(m[0], m[1])
	}
	var b strings.Builder
	i := 0
	for i < shown {
		if !covered[i] {
			if b.Len() >= maxDescription {
				break
			}
			b.WriteByte(window[i])
			i++
			continue
		}
		if b.Len()+len(redacted) > maxDescription {
			break // no half marker, whose text could pass for something else
		}
		b.WriteString(redacted)
		for i < len(window) && covered[i] {
			i++
		}
	}
	return bound(b.String(), i < len(s))
}

// searchText bounds the bytes of a text Redact searches: a few times what is
// shown, so a long credential or JWT early in the text leaves room for the
// rest, and hostile text costs little.
const searchText = 4 * maxDescription

// forms computes, once, every form of every atom, cleaned as text is.
func (r *Redactor) forms() ([]string, int) {
	if r == nil {
		return nil, 0
	}
	r.compute.Do(func() {
		once, seen := map[string]bool{}, map[string]bool{}
		for _, atom := range r.atoms {
			for _, e1 := range encodings(atom) {
				if once[e1] {
					continue
				}
				once[e1] = true
				for _, e2 := range encodings(e1) {
					// Also without surrounding space, as a provider or
					// a message may trim it.
					n := cleanRunes(e2)
					for _, n := range []string{n, strings.TrimSpace(n)} {
						if n != "" && !seen[n] {
							seen[n] = true
							r.needles = append(r.needles, n)
							r.longest = max(r.longest, len(n))
						}
					}
				}
			}
		}
	})
	return r.needles, r.longest
}

// encodings lists s and the forms one encoding gives it (see Redactor).
func encodings(s string) []string {
	if plain(s) {
		return []string{s} // no encoding changes it
	}
	out := []string{s}
	for _, enc := range percentEncoders {
		out = append(out, enc(s))
	}
	return append(out, jsonForms(s)...)
}

// jsonForms is s escaped as each JSON encoder would: every combination of
// the options that change something in s.
func jsonForms(s string) []string {
	var mask jsonOpts
	for _, r := range s {
		switch {
		case r == '<' || r == '>' || r == '&':
			mask |= jsonHTML | jsonUpper
		case r == '/':
			mask |= jsonSlash
		case r == '\b' || r == '\f':
			mask |= jsonLongBF | jsonUpper
		case r == '\u2028' || r == '\u2029':
			mask |= jsonLineSep | jsonASCII | jsonUpper
		case r < 0x20:
			mask |= jsonUpper
		case r > 0x7e:
			mask |= jsonASCII | jsonUpper
		}
	}
	var out []string
	for o := mask; ; o = (o - 1) & mask { // every subset of mask
		out = append(out, jsonEscape(s, o))
		if o == 0 {
			return out
		}
	}
}

// basicForms are the base64 forms of an HTTP Basic credential for id and
// secret (RFC 7617 §2): "id:secret" raw and with each piece percent-encoded
// (RFC 6749 §2.3.1 asks for form-urlencoding; some clients use %20).
func basicForms(id, secret string) []string {
	var out []string
	for _, enc := range append([]func(string) string{func(s string) string { return s }}, percentEncoders...) {
		pair := []byte(enc(id) + ":" + enc(secret))
		for _, b64 := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			out = append(out, b64.EncodeToString(pair))
		}
	}
	return out
}

// percentEncoders are the percent-encodings (RFC 3986 §2.1) a request or an
// echo of it may use.
var percentEncoders = []func(string) string{
	url.QueryEscape, // application/x-www-form-urlencoded as Go writes it: ' ' is '+'
	func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") },
	func(s string) string { return lowerHex(url.QueryEscape(s)) },
	url.PathEscape,
	// ECMAScript's encodeURIComponent (ECMA-262 §19.2.6.5).
	func(s string) string { return percentEncode(s, "-_.!~*'()", "%20") },
	// The WHATWG URL standard's application/x-www-form-urlencoded
	// serializer, and Java's URLEncoder.
	func(s string) string { return percentEncode(s, "*-._", "+") },
}

// percentEncode escapes every byte of s but ASCII letters, digits and keep;
// a space becomes space.
func percentEncode(s, keep, space string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		case c == ' ':
			b.WriteString(space)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// lowerHex lowercases the hex digits of s's percent-escapes.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if 'A' <= b[j] && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
		}
	}
	return string(b)
}

// jsonOpts are the choices JSON encoders make when escaping a string.
type jsonOpts uint8

const (
	jsonHTML    jsonOpts = 1 << iota // < > & as \u003c \u003e \u0026 (Go's encoding/json, Rails)
	jsonASCII                        // DEL and non-ASCII as \uXXXX, UTF-16 (Python's ensure_ascii, PHP)
	jsonUpper                        // \u00E9, not \u00e9 (Jackson)
	jsonSlash                        // "/" as "\/" (PHP)
	jsonLongBF                       // \b and \f as \u0008 and \u000c (Go before 1.22)
	jsonLineSep                      // U+2028 and U+2029 as \u2028 and \u2029 (Go's encoding/json)
)

// plain reports whether s holds only ASCII letters, digits, '-', '_' and
// '.', which no encoding above changes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// jsonEscape is s inside a JSON string, without the quotes (RFC 8259 §7).
func jsonEscape(s string, o jsonOpts) string {
	hex := "0123456789abcdef"
	if o&jsonUpper != 0 {
		hex = "0123456789ABCDEF"
	}
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[(r>>shift)&15])
		}
	}
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			u(r) // invalid UTF-8: Go's encoding/json writes \ufffd
			continue
		}
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '/' && o&jsonSlash != 0:
			b.WriteString(`\/`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b' && o&jsonLongBF == 0:
			b.WriteString(`\b`)
		case r == '\f' && o&jsonLongBF == 0:
			b.WriteString(`\f`)
		case r < 0x20, (r == '<' || r == '>' || r == '&') && o&jsonHTML != 0,
			(r == '\u2028' || r == '\u2029') && o&jsonLineSep != 0:
			u(r)
		case r > 0x7e && o&jsonASCII != 0: // DEL too, as Python's ensure_ascii
			if r > 0xFFFF { // a surrogate pair (RFC 8259 §7)
				r -= 0x10000
				u(0xD800 + (r>>10)&0x3FF)
				u(0xDC00 + r&0x3FF)
			} else {
				u(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
