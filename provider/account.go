package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// The account a user's connection holds: who approved the authorization, as
// the provider says when asked with the connection's access token. This is
// the verified source of the account (Token.IDToken is not checked).

// Account is the provider's account behind an access token.
type Account struct {
	// Subject is the provider's stable identifier of the account (OpenID
	// Connect's sub, GitHub's numeric user id as decimal text).
	Subject string
	// Email, EmailVerified and Name are as the provider says, cleaned like
	// CleanText; "" and false when it does not say.
	Email         string
	EmailVerified bool
	Name          string
}

// accountFormat is how a dialect's provider answers for an account.
type accountFormat int

const (
	// accountOIDC: OpenID Connect Core §5.3 UserInfo, a GET with the access
	// token as a Bearer credential (RFC 6750 §2.1), answered with the claims
	// sub (required), email, email_verified and name (§5.1).
	accountOIDC accountFormat = iota
	// accountGitHub: GitHub's REST API, GET /user
	// (https://docs.github.com/en/rest/users/users#get-the-authenticated-user):
	// id (a number), login, and email (null unless the user made one public).
	accountGitHub
)

// ErrNoAccountEndpoint: the endpoint has no userinfo URL, configured or
// documented by its dialect.
var ErrNoAccountEndpoint = errors.New("the provider has no userinfo endpoint to read the connected account from")

// maxSubject is OpenID Connect Core §5.1's bound on sub: 255 ASCII characters.
const maxSubject = 255

// EffectiveUserinfoURL is where Account goes: the configured URL, else the
// dialect's documented one ("" when there is none, or when it needs a
// tenant: Dialect.Preset fills that in).
func (e *Endpoint) EffectiveUserinfoURL() string {
	if e.UserinfoURL != "" {
		return e.UserinfoURL
	}
	return presetURL(e.row().userinfoURL)
}

// Account asks the endpoint's userinfo URL, with accessToken, which account
// the token belongs to. An answer without a subject is an error. Errors are
// ErrNoAccountEndpoint, or *Error classified like a token request's and
// never carrying the access token or the client's secret.
func (c *Client) Account(ctx context.Context, e *Endpoint, accessToken string) (Account, error) {
	target := e.EffectiveUserinfoURL()
	if target == "" {
		return Account{}, ErrNoAccountEndpoint
	}
	if accessToken == "" {
		return Account{}, &Error{Class: Refused, Description: "no access token to ask for the account with"}
	}
	r := e.Redactor(accessToken)
	var (
		req   *http.Request
		err   error
		parse = parseUserinfo
	)
	if e.row().account == accountGitHub {
		req, err = e.githubRequest(ctx, http.MethodGet, target, nil, accessToken)
		parse = parseGitHubUser
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+accessToken)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", userAgent)
		}
	}
	if err != nil {
		return Account{}, r.refusal(err)
	}
	return answer(c, req, r, parse)
}

// userinfoJSON is the part of a UserInfo answer an Account holds.
type userinfoJSON struct {
	Subject       jsonText    `json:"sub"`
	Email         jsonText    `json:"email"`
	EmailVerified lenientBool `json:"email_verified"`
	Name          jsonText    `json:"name"`
}

// parseUserinfo reads a UserInfo answer (OpenID Connect Core §5.3.2), or
// its error (§5.3.3: RFC 6750 §3, often with an empty body).
func parseUserinfo(status int, contentType string, body []byte) (Account, error) {
	if status < 200 || status > 299 {
		return Account{}, userinfoError(status, contentType, body)
	}
	if htmlPage(contentType, body) {
		return Account{}, &Error{Class: Temporary, Status: status, Description: "the provider answered with an HTML page, not its userinfo"}
	}
	if mediaType, _, _ := mime.ParseMediaType(contentType); mediaType == "application/jwt" {
		return Account{}, &Error{Class: Refused, Status: status, Description: "the userinfo answer is signed (application/jwt), which is not supported: configure the client for JSON userinfo"}
	}
	var uj userinfoJSON
	if err := json.Unmarshal(bytes.TrimSpace(body), &uj); err != nil {
		return Account{}, &Error{Class: Refused, Status: status, Description: "the userinfo answer is not a JSON object"}
	}
	return newAccount(status, string(uj.Subject), string(uj.Email), bool(uj.EmailVerified), string(uj.Name))
}

// userinfoError reads a refused userinfo request: a token endpoint's error
// shapes when there is a body, else the status alone.
func userinfoError(status int, contentType string, body []byte) error {
	if len(bytes.TrimSpace(body)) > 0 {
		if _, err := parseResponse(status, contentType, body); err != nil {
			return err
		}
	}
	description := "the userinfo endpoint refused the request"
	if status == http.StatusUnauthorized {
		description = "the userinfo endpoint refused the access token"
	}
	return &Error{Class: classOf(status), Status: status, Description: description}
}

// githubUserJSON is the part of GitHub's /user answer an Account holds.
type githubUserJSON struct {
	ID    jsonText `json:"id"`
	Login jsonText `json:"login"`
	Email jsonText `json:"email"`
}

// parseGitHubUser reads GET /user: id is the subject, login the name.
// GitHub does not say there whether the email is verified.
func parseGitHubUser(status int, contentType string, body []byte) (Account, error) {
	if status < 200 || status > 299 {
		return Account{}, githubError(status, contentType, body)
	}
	var gu githubUserJSON
	if err := json.Unmarshal(bytes.TrimSpace(body), &gu); err != nil {
		return Account{}, &Error{Class: Refused, Status: status, Description: "GitHub's answer is not a user object"}
	}
	if id, err := strconv.ParseUint(string(gu.ID), 10, 63); err != nil || id == 0 {
		return Account{}, &Error{Class: Refused, Status: status, Description: "GitHub's answer has no user id"}
	}
	return newAccount(status, string(gu.ID), string(gu.Email), false, string(gu.Login))
}

// newAccount checks an answer's subject and cleans its text. The subject
// is an identifier, compared and stored as is: one that cleaning would
// change (control characters, surrounding space) or longer than
// maxSubject is refused, not altered; email and name are display text,
// cleaned.
func newAccount(status int, subject, email string, verified bool, name string) (Account, error) {
	switch {
	case subject == "":
		return Account{}, &Error{Class: Refused, Status: status, Description: "the provider's account answer has no sub"}
	case len(subject) > maxSubject || CleanText(subject) != subject:
		return Account{}, &Error{Class: Refused, Status: status, Description: "the provider's sub holds control characters or surrounding space, or is longer than 255 bytes; the answer is refused and the value not shown"}
	}
	return Account{Subject: subject, Email: CleanText(email), EmailVerified: verified, Name: CleanText(name)}, nil
}

// jsonText is a JSON string, or a number as its decimal text (GitHub's id);
// any other value reads as "".
type jsonText string

func (t *jsonText) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = jsonText(s)
		return nil
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		*t = jsonText(n.String())
	}
	return nil
}

// lenientBool is a JSON boolean, or the string "true" (some providers quote
// email_verified); anything else reads as false.
type lenientBool bool

func (v *lenientBool) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*v = lenientBool(strings.EqualFold(s, "true"))
		return nil
	}
	var flag bool
	_ = json.Unmarshal(b, &flag)
	*v = lenientBool(flag)
	return nil
}
