package provider

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Token is a provider's successful answer.
type Token struct {
	AccessToken  string
	TokenType    string
	RefreshToken string        // "" when the provider issued none
	ExpiresIn    time.Duration // 0 when the provider did not say
	// RefreshExpiresIn is the refresh token's lifetime, when the provider
	// says (refresh_token_expires_in, or Intuit's x_refresh_token_expires_in).
	RefreshExpiresIn time.Duration
	Scopes           []string // nil when the provider did not say
	// Permissions and Repositories: what a GitHub installation token may
	// do, and where (nil when not said).
	Permissions  map[string]string
	Repositories []string
	// IssuedTokenType is a token exchange's issued_token_type (RFC 8693
	// §2.2.1, a token type URI); "" for every other grant.
	IssuedTokenType string
	// IDToken is the OpenID Connect ID token a user's authorization may
	// bring, as sent: a credential (Secrets lists it), and unverified. Its
	// signature, issuer, audience and nonce are not checked here, so none of
	// its claims is trusted: who connected is read from the userinfo
	// endpoint with the access token (Client.Account), an answer of the
	// provider itself over TLS.
	IDToken string
}

// Secrets are the token's credentials, for a Redactor of text that may
// quote them.
func (t *Token) Secrets() []string {
	return []string{t.AccessToken, t.RefreshToken, t.IDToken}
}

// tokenJSON covers RFC 6749 §5.1/§5.2, api.video's problem+json errors and
// Endorsed's is_error flag. Unknown fields are ignored.
type tokenJSON struct {
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	RefreshToken string  `json:"refresh_token"`
	IDToken      string  `json:"id_token"`
	ExpiresIn    seconds `json:"expires_in"` // a number, or a numeric string (Endorsed)
	// The refresh token's lifetime: GitHub and Microsoft name it
	// refresh_token_expires_in, Intuit x_refresh_token_expires_in.
	RefreshExpiresIn  lenientSeconds `json:"refresh_token_expires_in"`
	XRefreshExpiresIn lenientSeconds `json:"x_refresh_token_expires_in"`
	Scope             scopeList      `json:"scope"`    // space-delimited string, or an array (Endorsed)
	IsError           bool           `json:"is_error"` // Endorsed

	ErrorCode        string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Message          string `json:"message"` // Endorsed and many others
	Type             string `json:"type"`    // api.video (RFC 7807)
	Title            string `json:"title"`
	Detail           string `json:"detail"`
}

// errorOnlyFields may carry any type without making a response unusable.
var errorOnlyFields = map[string]bool{
	"error": true, "error_description": true, "message": true, "type": true,
	"title": true, "detail": true, "is_error": true, "token_type": true, "scope": true,
	"id_token": true, // unverified and unused (Token.IDToken): an odd one costs nothing
}

// seconds is a lifetime in seconds sent as a JSON number or a numeric string.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	b = bytes.Trim(b, `"`)
	if len(b) == 0 {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if errors.Is(err, strconv.ErrRange) {
		err = nil // ±Inf or 0: clamped below, like any absurd lifetime
	}
	if err != nil || math.IsNaN(f) {
		return errors.New("expires_in is not a number")
	}
	*s = seconds(clampSeconds(f))
	return nil
}

// lenientSeconds is an optional lifetime: an unreadable value means "not said"
// rather than an unusable response.
type lenientSeconds seconds

func (s *lenientSeconds) UnmarshalJSON(b []byte) error {
	var v seconds
	if v.UnmarshalJSON(b) == nil {
		*s = lenientSeconds(v)
	}
	return nil
}

// maxLifetime caps absurd expiries so time arithmetic cannot overflow.
const maxLifetime = 10 * 365 * 24 * time.Hour

func clampSeconds(f float64) int64 {
	if f <= 0 {
		return 0
	}
	if max := maxLifetime.Seconds(); f > max {
		return int64(max)
	}
	return int64(f)
}

// scopeList is a space-delimited string or an array of strings.
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*s = slices.DeleteFunc(list, func(v string) bool { return v == "" })
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = splitScope(str)
	return nil
}

// splitScope splits a scope string at its spaces (RFC 6749 §3.3: SP only,
// so a tab or a line break stays inside a scope-token, where it is refused).
func splitScope(str string) []string {
	return slices.DeleteFunc(strings.Split(str, " "), func(v string) bool { return v == "" })
}

// parseResponse turns a token endpoint's answer into a Token or an *Error.
// Like golang.org/x/oauth2's internal/token.go it takes JSON or a form-encoded
// body, numbers or strings for expires_in, and ignores unknown fields; it
// rejects clearly what cannot be used.
func parseResponse(status int, contentType string, body []byte) (*Token, error) {
	failed := status < 200 || status > 299
	mediaType, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)

	if htmlPage(contentType, body) {
		// A gateway's error or login page: the provider itself never answered.
		return nil, &Error{Class: Temporary, Status: status, Description: "the provider answered with an HTML page, not a token response"}
	}

	var tj tokenJSON
	switch mediaType {
	case "application/x-www-form-urlencoded", "text/plain":
		vals, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return nil, unparsable(status, failed, "form-encoded")
		}
		tj = tokenJSON{
			AccessToken: vals.Get("access_token"), TokenType: vals.Get("token_type"),
			RefreshToken: vals.Get("refresh_token"), IDToken: vals.Get("id_token"),
			ErrorCode: vals.Get("error"), ErrorDescription: vals.Get("error_description"),
		}
		if scope := splitScope(vals.Get("scope")); len(scope) > 0 {
			tj.Scope = scope
		}
		tj.ExpiresIn = formSeconds(vals.Get("expires_in"))
		tj.RefreshExpiresIn = lenientSeconds(formSeconds(vals.Get("refresh_token_expires_in")))
		tj.XRefreshExpiresIn = lenientSeconds(formSeconds(vals.Get("x_refresh_token_expires_in")))
	default:
		if err := json.Unmarshal(trimmed, &tj); err != nil {
			var typeErr *json.UnmarshalTypeError
			switch {
			case errors.As(err, &typeErr) && errorOnlyFields[typeErr.Field]:
				// A decorative field of an odd type; the rest was decoded.
			case failed:
				return nil, unparsable(status, failed, "JSON")
			default:
				return nil, &Error{Class: Refused, Status: status, Description: "the provider's response is not a usable token response: " + err.Error()}
			}
		}
	}

	if failed || tj.IsError || tj.ErrorCode != "" {
		return nil, tj.asError(status)
	}
	if tj.AccessToken == "" {
		return nil, &Error{Class: Refused, Status: status, Description: "the provider's response has no access_token"}
	}
	tok := &Token{
		AccessToken:  tj.AccessToken,
		TokenType:    tj.TokenType,
		RefreshToken: tj.RefreshToken,
		IDToken:      tj.IDToken,
		ExpiresIn:    time.Duration(tj.ExpiresIn) * time.Second,
		Scopes:       tj.Scope,

		RefreshExpiresIn: time.Duration(max(tj.RefreshExpiresIn, tj.XRefreshExpiresIn)) * time.Second,
	}
	if err := tok.check(status); err != nil {
		return nil, err
	}
	if strings.IndexFunc(tok.IDToken, func(r rune) bool { return r >= utf8.RuneSelf || !tokenChars(byte(r)) }) >= 0 {
		tok.IDToken = "" // not a compact JWT; nothing depends on it, so it is dropped rather than the answer refused
	}
	if tok.TokenType == "" {
		tok.TokenType = "Bearer"
	}
	return tok, nil
}

// htmlPage reports whether an answer is an HTML page: a gateway's error or
// login page in front of the provider, never the provider's own API answer.
func htmlPage(contentType string, body []byte) bool {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	return mediaType == "text/html" || bytes.HasPrefix(bytes.TrimSpace(body), []byte("<"))
}

// The character sets RFC 6749 Appendix A gives the strings of a token
// response. A token's strings go into HTTP headers (RFC 6750 §2.1), Vault
// Agent templates and terminals, so a byte outside them refuses the whole
// answer (a temporary class would retry it forever), with an error that
// names the field, never the value.
//
// '<', '>', '&' and quotes are allowed in tokens, as VSCHAR allows them:
// a token is an opaque credential, never shown in an HTML page; what would
// turn it into something else (a line break ending a header, an escape
// sequence driving a terminal, a space splitting it, non-ASCII) is refused.
// Text shown to people is cleaned instead (CleanText).
var (
	// access_token and refresh_token: 1*VSCHAR (%x20-7E, Appendix A.12 and
	// A.17), less the space, which no token of RFC 6750's b64token syntax holds.
	tokenChars = func(c byte) bool { return 0x21 <= c && c <= 0x7e }
	// token_type: a type-name (1*name-char, A.13), or a URI-reference
	// (RFC 3986 §4.1: unreserved, reserved and '%').
	tokenTypeChars = func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
	}
	// A scope-token: 1*NQCHAR (%x21 / %x23-5B / %x5D-7E, A.4).
	scopeChars = func(c byte) bool { return tokenChars(c) && c != '"' && c != '\\' }
)

// check refuses a token whose strings RFC 6749 does not allow.
func (t *Token) check(status int) *Error {
	type field struct {
		name, value string
		allowed     func(byte) bool
		rule        string
	}
	fields := []field{
		{"access_token", t.AccessToken, tokenChars, "printable ASCII without spaces (RFC 6749 Appendix A.12)"},
		{"refresh_token", t.RefreshToken, tokenChars, "printable ASCII without spaces (RFC 6749 Appendix A.17)"},
		{"token_type", t.TokenType, tokenTypeChars, "a type name or a URI (RFC 6749 Appendix A.13)"},
	}
	for _, scope := range t.Scopes {
		fields = append(fields, field{"scope", scope, scopeChars, "printable ASCII without spaces, quotes or backslashes (RFC 6749 Appendix A.4)"})
	}
	for _, f := range fields {
		if i := strings.IndexFunc(f.value, func(r rune) bool { return r >= utf8.RuneSelf || !f.allowed(byte(r)) }); i >= 0 {
			return &Error{Class: Refused, Status: status, Description: fmt.Sprintf(
				"the provider's %s holds %s at byte %d, where only %s is allowed; the answer is refused and the value not shown",
				f.name, describeByte(f.value[i]), i, f.rule)}
		}
	}
	return nil
}

// describeByte names b for an error, without quoting the value around it.
func describeByte(b byte) string {
	switch {
	case b == ' ':
		return "a space"
	case b < 0x20 || b == 0x7f:
		return fmt.Sprintf("a control character (0x%02x)", b)
	case b >= utf8.RuneSelf:
		return "a non-ASCII character"
	}
	return fmt.Sprintf("the character %q", rune(b))
}

func unparsable(status int, failed bool, format string) *Error {
	if failed {
		return &Error{Class: classOf(status), Status: status, Description: "the provider's error response is not " + format}
	}
	return &Error{Class: Refused, Status: status, Description: "the provider's response is not valid " + format}
}

// formSeconds reads a lifetime from a form-encoded answer.
func formSeconds(v string) seconds {
	n, _ := strconv.ParseFloat(v, 64)
	return seconds(clampSeconds(n))
}

// asError folds the error shapes the dialects use into one *Error. An error
// inside a 2xx (GitHub, Endorsed's is_error) is a refusal like a 4xx.
func (tj *tokenJSON) asError(status int) *Error {
	e := &Error{Class: classOf(status), Status: status, Code: tj.ErrorCode}
	if e.Code == "" && tj.Type != "" {
		e.Code = path.Base(tj.Type) // api.video: a documentation URL naming the problem
	}
	// Joined, not trimmed: what the request's Redactor removes must reach it whole.
	problem := strings.Join(slices.DeleteFunc([]string{tj.Title, tj.Detail}, func(s string) bool { return s == "" }), " ")
	e.Description = cmp.Or(tj.ErrorDescription, problem, tj.Message)
	if e.Description == "" && e.Code == "" {
		e.Description = "the provider refused the request"
	}
	return e
}
