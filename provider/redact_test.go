package provider

// The redaction rule: no form of a credential a request carried reaches an
// error, whatever the provider echoes and however it encodes it.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
)

var redactSeed = flag.Uint64("seed", 0, "seed of the random redaction trials (0: time-based)")

// trialRand returns the random source of one trial set, and logs its seed:
// `go test ./provider/ -run TestRedactionProperty -seed=N` replays it.
func trialRand(t *testing.T) (*rand.Rand, uint64) {
	t.Helper()
	seed := trialSeed()
	t.Logf("seed %d (replay: go test ./provider/ -run %s -seed=%d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed)), seed
}

var trialSeed = sync.OnceValue(func() uint64 {
	if *redactSeed != 0 {
		return *redactSeed
	}
	return uint64(time.Now().UnixNano())
})

// echoForms are the forms in which a provider may echo a credential,
// computed here with the standard library (and two small encoders) rather
// than with the code under test. id is the client id, for HTTP Basic;
// "" leaves Basic's forms out.
func echoForms(id, secret string) map[string]string {
	jsonGo := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	jsonNoHTML := func(s string) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		b := bytes.TrimSpace(buf.Bytes())
		return string(b[1 : len(b)-1])
	}
	forms := map[string]string{
		"raw":                        secret,
		"url.QueryEscape":            url.QueryEscape(secret),
		"query with %20":             strings.ReplaceAll(url.QueryEscape(secret), "+", "%20"),
		"url.PathEscape":             url.PathEscape(secret),
		"encoding/json":              jsonGo(secret),
		"encoding/json without HTML": jsonNoHTML(secret),
		`JSON with \/`:               strings.ReplaceAll(jsonGo(secret), "/", `\/`),
		"JSON ensure_ascii":          asciiJSON(secret),
		"JSON inside JSON":           jsonGo(jsonGo(secret)),
		"JSON inside a query":        url.QueryEscape(jsonGo(secret)),
	}
	if id != "" {
		pad := func(s string) string { return strings.TrimRight(s, "=") }
		forms["Basic, pieces form-encoded"] = pad(base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret))))
		forms["Basic, raw pieces"] = pad(base64.StdEncoding.EncodeToString([]byte(id + ":" + secret)))
	}
	return forms
}

// asciiJSON escapes s as Python's json.dumps does by default (ensure_ascii).
func asciiJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// leaked names the forms of forms that out still holds, as sent, with its
// control characters shown as spaces, or trimmed (at least 4 bytes left). The marker and a final "…" are taken
// out first: text around them is not the credential.
func leaked(out string, forms map[string]string) []string {
	// Text on either side of a marker is checked apart: a form that only
	// spans a marker is not shown. (Not by replacing the markers with a
	// character: a secret may hold any character; the fuzzer found one of NUL.)
	var pieces []string
	for _, p := range strings.Split(out, redacted) {
		pieces = append(pieces, strings.Split(p, "…")...)
	}
	contains := func(sub string) bool {
		return slices.ContainsFunc(pieces, func(p string) bool { return strings.Contains(p, sub) })
	}
	var names []string
	for name, f := range forms {
		spaced := strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, f)
		trimmed := strings.TrimSpace(spaced)
		if contains(f) || contains(spaced) || len(trimmed) >= 4 && contains(trimmed) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// nasty holds every character that some encoding changes.
const nasty = "p\"a\\s s/w+o%r&d=:<x>'é中😀?#\t\x01~*!()"

// TestRedactorRemovesEveryForm: the client secret, in each form a provider
// may echo it, is removed from the text around it, which is kept.
func TestRedactorRemovesEveryForm(t *testing.T) {
	e := &Endpoint{ClientID: "client:1 é", ClientSecret: nasty}
	for name, form := range echoForms(e.ClientID, nasty) {
		t.Run(name, func(t *testing.T) {
			out := e.Redactor().Redact("before " + form + " after")
			if got := leaked(out, map[string]string{name: form}); len(got) > 0 {
				t.Fatalf("Redact(%q) = %q, still holds the secret", form, out)
			}
			if want := "before " + redacted; !strings.HasPrefix(out, want) || !strings.HasSuffix(out, " after") {
				t.Fatalf("Redact(%q) = %q, want %q… after", form, out, want)
			}
		})
	}
}

// TestRedactorOverlappingCredentials: a credential inside another, or one
// that shares a part with it, is removed whole, whichever comes first.
func TestRedactorOverlappingCredentials(t *testing.T) {
	cases := []struct {
		name, secret, text, want string
		others                   []string
	}{
		{"refresh token holds the client secret", "abc123", "token xyz-abc123-xyz", "token [redacted]", []string{"xyz-abc123-xyz"}},
		{"code is a prefix of the client secret", "hunter2-secret", "sent hunter2-secret", "sent [redacted]", []string{"hunter2"}},
		{"two credentials overlap", "aaabbb", "x aaabbbccc y", "x [redacted] y", []string{"bbbccc"}},
		{"repeated overlapping occurrences", "abab", "ababab!", "[redacted]!", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &Endpoint{ClientSecret: c.secret}
			if got := e.Redactor(c.others...).Redact(c.text); got != c.want {
				t.Fatalf("Redact(%q) = %q, want %q", c.text, got, c.want)
			}
		})
	}
}

// TestRedactorAtTheCut: text is cut to maxDescription bytes; a credential
// that the cut goes through shows no part of it.
func TestRedactorAtTheCut(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 64) // 1 KiB, far past the cut
	cases := []struct {
		name, secret string
		at           int
	}{
		{"credential across the cut", "secret-across-the-cut", maxDescription - 5},
		{"credential longer than the cut, starting before it", long, 250},
		{"credential starting at the cut", "starts-at-the-cut", maxDescription},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Repeat("x", c.at) + c.secret + strings.Repeat("y", 400)
			out := (&Endpoint{ClientSecret: c.secret}).Redactor().Redact(text)
			if strings.Contains(out, c.secret[:5]) {
				t.Fatalf("Redact = %q, holds the start of the secret", out)
			}
			if len(out) > maxDescription+len("…") || !strings.HasSuffix(out, "…") {
				t.Fatalf("Redact = %d bytes %q, want at most %d ending in …", len(out), out, maxDescription+len("…"))
			}
		})
	}
}

// TestRedactorCleans: control characters become spaces, in the text and in
// the credentials alike, so a credential whose tab the provider turned into
// a space is still found; a nil Redactor still removes signed JWTs.
func TestRedactorCleans(t *testing.T) {
	e := &Endpoint{ClientSecret: "tab\tsecret"}
	cases := []struct {
		name string
		r    *Redactor
		in   string
		want string
	}{
		{"terminal escapes and line breaks", e.Redactor(), "bad\x1b[31m red\r\nX-Evil: 1\u2028\u202eend", "bad [31m red  X-Evil: 1  end"},
		{"credential as sent", e.Redactor(), "got tab\tsecret", "got [redacted]"},
		{"credential with its control character as a space", e.Redactor(), "got tab secret", "got [redacted]"},
		{"C1 control and invalid UTF-8", e.Redactor(), "a\u0085b\xffc", "a b\ufffdc"},
		{"nil redactor removes a JWS", nil, "assertion eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln rejected", "assertion [redacted] rejected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.r.Redact(c.in); got != c.want {
				t.Fatalf("Redact(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// TestCleanText: provider text for people: no control or bidirectional
// formatting characters, bounded, plain text ('<' stays: pages escape it).
func TestCleanText(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "  invalid_grant  ", "invalid_grant"},
		{"line breaks and escapes", "a\r\nb\x1b]0;title\x07c\x7f", "a  b ]0;title c"},
		{"bidirectional override", "abc\u202edcba\u2066x\u2069", "abc dcba x"},
		{"line separators", "a\u2028b\u2029c\u0085d", "a b c d"},
		{"invalid UTF-8", "a\xffb", "a\ufffdb"},
		{"markup is text, escaped by pages", "<script>alert(1)</script>", "<script>alert(1)</script>"},
		{"bounded", strings.Repeat("é", 200), strings.Repeat("é", maxDescription/2) + "…"},
		{"bounded inside a rune", "x" + strings.Repeat("é", 200), "x" + strings.Repeat("é", (maxDescription-1)/2) + "…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CleanText(c.in)
			if got != c.want {
				t.Fatalf("CleanText(%q) = %q, want %q", c.in, got, c.want)
			}
			if again := CleanText(got); again != got {
				t.Fatalf("CleanText is not idempotent: %q, then %q", got, again)
			}
		})
	}
}

// TestRedactionProperty: random credentials holding every special
// character, echoed by a provider in every form, in every shape of error
// body, never reach the error in any form. Each trial draws a client id,
// secret and refresh token; the seed is logged (replay with -seed).
func TestRedactionProperty(t *testing.T) {
	rng, seed := trialRand(t)
	bodies := []struct {
		name        string
		status      int
		contentType string
		body        func(echo string) string
		shown       bool // the error shows the provider's text
	}{
		{"JSON error_description", 400, "application/json", func(v string) string {
			return mustJSON(t, map[string]string{"error": "invalid_client", "error_description": "received " + v + " end"})
		}, true},
		{"JSON error code", 400, "application/json", func(v string) string { return mustJSON(t, map[string]string{"error": v}) }, true},
		{"problem+json detail", 401, "application/problem+json", func(v string) string {
			return mustJSON(t, map[string]any{"type": "https://errors.example/bad", "title": "Unauthorized", "detail": v, "status": 401})
		}, true},
		{"is_error message in a 200", 200, "application/json", func(v string) string {
			return mustJSON(t, map[string]any{"is_error": true, "message": v})
		}, true},
		{"form error", 400, "application/x-www-form-urlencoded", func(v string) string {
			return "error=invalid_request&error_description=" + url.QueryEscape("echo: "+v)
		}, true},
		{"plain text", 400, "text/plain", func(v string) string { return "bad request: " + v }, false},
		{"HTML page", 502, "text/html", func(v string) string { return "<html><body><pre>" + html.EscapeString(v) + "</pre></body></html>" }, false},
		{"JSON that breaks off", 200, "application/json", func(v string) string { return `{"access_token":"` + v }, false},
	}
	trials := 150
	if raceEnabled {
		trials = 40
	}
	for trial := range trials {
		id, secret, refresh := randomCredential(rng, 1, 8), randomCredential(rng, 6, 24), randomCredential(rng, 6, 24)
		e := &Endpoint{ClientID: id, ClientSecret: secret}
		r := e.Redactor(refresh) // the trial's requests all carry these
		all := map[string]string{}
		for name, f := range echoForms(id, secret) {
			all["client secret "+name] = f
		}
		for name, f := range echoForms("", refresh) {
			all["refresh token "+name] = f
		}
		for formName, echo := range all {
			for _, b := range bodies {
				_, err := parseResponse(b.status, b.contentType, []byte(b.body(echo)))
				if err == nil {
					t.Fatalf("seed %d trial %d: %s echoed in %s parsed as a token", seed, trial, formName, b.name)
				}
				out := cleaned(err, r, 0).Error()
				if got := leaked(out, all); len(got) > 0 {
					t.Fatalf("seed %d trial %d: id %q secret %q refresh token %q echoed as %s in a %s: error %q holds %v",
						seed, trial, id, secret, refresh, formName, b.name, out, got)
				}
				if b.shown && !strings.Contains(out, redacted) {
					t.Fatalf("seed %d trial %d: %s %q echoed in a %s: error %q, want the echo shown redacted", seed, trial, formName, echo, b.name, out)
				}
			}
		}
	}
}

// randomCredential draws a string of between min and max characters, most
// of them ones that some encoding changes.
func randomCredential(rng *rand.Rand, min, max int) string {
	special := []rune("\"\\%+ &=:<>/?#'~*!();,@$[]{}|^`\t\r\n\x00\x01\x1b\x7féü中😀\u00a0")
	var b strings.Builder
	for range min + rng.IntN(max-min+1) {
		if rng.IntN(3) == 0 {
			b.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."[rng.IntN(65)])
		} else {
			b.WriteRune(special[rng.IntN(len(special))])
		}
	}
	return b.String()
}
