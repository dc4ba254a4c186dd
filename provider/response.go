package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
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
}

// tokenJSON covers RFC 6749 §5.1/§5.2, api.video's problem+json errors and
// Endorsed's is_error flag. Unknown fields are ignored.
type tokenJSON struct {
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	RefreshToken string  `json:"refresh_token"`
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
		*s = list
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = strings.Fields(str)
	return nil
}

// parseResponse turns a token endpoint's answer into a Token or an *Error.
// Like golang.org/x/oauth2's internal/token.go it takes JSON or a form-encoded
// body, numbers or strings for expires_in, and ignores unknown fields; it
// rejects clearly what cannot be used.
func parseResponse(status int, contentType string, body []byte) (*Token, error) {
	failed := status < 200 || status > 299
	mediaType, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)

	if mediaType == "text/html" || bytes.HasPrefix(trimmed, []byte("<")) {
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
			RefreshToken: vals.Get("refresh_token"),
			ErrorCode:    vals.Get("error"), ErrorDescription: vals.Get("error_description"),
		}
		if scope := strings.Fields(vals.Get("scope")); len(scope) > 0 {
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
		ExpiresIn:    time.Duration(tj.ExpiresIn) * time.Second,
		Scopes:       tj.Scope,

		RefreshExpiresIn: time.Duration(max(tj.RefreshExpiresIn, tj.XRefreshExpiresIn)) * time.Second,
	}
	if tok.TokenType == "" {
		tok.TokenType = "Bearer"
	}
	return tok, nil
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
	e.Description = firstNonEmpty(tj.ErrorDescription, strings.TrimSpace(tj.Title+" "+tj.Detail), tj.Message)
	if e.Description == "" && e.Code == "" {
		e.Description = "the provider refused the request"
	}
	return e
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
