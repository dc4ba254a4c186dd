package provider

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// OAuth 2.0 Token Exchange (RFC 8693): a client presents a token it holds
// (the subject token, and perhaps an actor token) at the token endpoint,
// with the endpoint's client authentication, and gets another token for it,
// typically narrower: for one audience or resource, with fewer scopes.

// GrantTokenExchange names the grant (RFC 8693 §2.1).
const GrantTokenExchange Grant = "urn:ietf:params:oauth:grant-type:token-exchange"

// Token type identifiers (RFC 8693 §3), for subject_token_type,
// actor_token_type, requested_token_type and issued_token_type.
const (
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeSAML1        = "urn:ietf:params:oauth:token-type:saml1"
	TokenTypeSAML2        = "urn:ietf:params:oauth:token-type:saml2"
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
)

// TokenExchange is what a token exchange presents and asks for besides its
// narrowing (TokenRequest.Narrowing: scope, audiences, resources). The
// tokens are credentials: they never appear in an error.
type TokenExchange struct {
	// SubjectToken and SubjectTokenType (REQUIRED, RFC 8693 §2.1): the
	// token the new one is issued on behalf of.
	SubjectToken, SubjectTokenType string
	// ActorToken and ActorTokenType (OPTIONAL): who acts for the subject;
	// the type is required with the token and not sent without it.
	ActorToken, ActorTokenType string
	// RequestedTokenType (OPTIONAL): "" leaves it to the server. When set,
	// an answer whose issued_token_type differs is refused.
	RequestedTokenType string
}

// check refuses a token exchange RFC 8693 §2.1 does not allow, before it is sent.
func (x *TokenExchange) check() error {
	switch {
	case x == nil || x.SubjectToken == "":
		return fmt.Errorf("a token exchange needs a subject_token (RFC 8693 §2.1)")
	case x.SubjectTokenType == "":
		return fmt.Errorf("a token exchange needs the subject_token_type (RFC 8693 §2.1)")
	case x.ActorToken != "" && x.ActorTokenType == "":
		return fmt.Errorf("an actor_token needs its actor_token_type (RFC 8693 §2.1)")
	case x.ActorToken == "" && x.ActorTokenType != "":
		return fmt.Errorf("actor_token_type without an actor_token (RFC 8693 §2.1: it MUST NOT be included)")
	}
	for _, t := range []struct{ name, value string }{
		{"subject_token_type", x.SubjectTokenType}, {"actor_token_type", x.ActorTokenType}, {"requested_token_type", x.RequestedTokenType},
	} {
		if u, err := url.Parse(t.value); t.value != "" && (err != nil || !u.IsAbs() || strings.ContainsFunc(t.value, isControl)) {
			return fmt.Errorf("%s %q: a token type is a URI (RFC 8693 §3)", t.name, t.value)
		}
	}
	return nil
}

// tokenExchange is the grant: the subject (and actor), the requested type,
// and the narrowing's audiences and resources repeated (§2.1: "multiple
// audience parameters"; RFC 8707 §2.1) and its scope. The endpoint's
// configured scopes and audience are its base grant's, not sent here.
var tokenExchange = grant{
	name:    GrantTokenExchange,
	oauth:   true,
	narrows: narrowScopes | narrowAudiences | narrowResources,
	params: func(_ *Endpoint, in *TokenRequest) []param {
		x := in.Exchange
		params := []param{{"grant_type", string(GrantTokenExchange)},
			{"subject_token", x.SubjectToken}, {"subject_token_type", x.SubjectTokenType}}
		if x.ActorToken != "" {
			params = append(params, param{"actor_token", x.ActorToken}, param{"actor_token_type", x.ActorTokenType})
		}
		if x.RequestedTokenType != "" {
			params = append(params, param{"requested_token_type", x.RequestedTokenType})
		}
		if n := in.Narrowing; n != nil {
			if len(n.Audiences) > 0 {
				params = append(params, param{"audience", repeated(n.Audiences)})
			}
			if len(n.Scopes) > 0 {
				params = append(params, param{"scope", n.Scopes})
			}
		}
		return append(params, in.resourceParams()...)
	},
	needs: func(e *Endpoint) Credential {
		if e.ClientID == "" {
			return NeedsClientID
		}
		return ""
	},
}

// CanExchange reports whether the endpoint's dialect documents RFC 8693
// token exchange at its token endpoint.
func (e *Endpoint) CanExchange() bool { return e.row().exchange.name != "" }

// exchanged sends a token exchange and reads its answer (parseExchange).
func exchanged(c *Client, e *Endpoint, req *http.Request, r *Redactor, x *TokenExchange) (*Token, error) {
	tok, err := answer(c, req, r, func(status int, contentType string, body []byte) (*Token, error) {
		return parseExchange(status, contentType, body, x.RequestedTokenType)
	})
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken != "" && tok.RefreshExpiresIn == 0 {
		tok.RefreshExpiresIn = e.row().refreshLifetime
	}
	return tok, nil
}

// parseExchange reads a token exchange answer (RFC 8693 §2.2.1) like any
// token response (parseResponse: access_token, token_type, expires_in,
// scope, refresh_token; errors of §2.2.2 and RFC 6749 §5.2 classified the
// same way), plus issued_token_type. That one is REQUIRED, but read
// tolerantly, as golang.org/x/oauth2 reads what RFC 6749 requires: when
// absent, the token is of the type requested, else an access token. One of
// another type than requested is refused: it is not what the caller will
// hand out. token_type is "N_A" for a token that is not an access token
// (§2.2.1) and is kept as sent.
func parseExchange(status int, contentType string, body []byte, requested string) (*Token, error) {
	tok, err := parseResponse(status, contentType, body)
	if err != nil {
		return nil, err
	}
	var issued string
	if mediaType, _, _ := mime.ParseMediaType(contentType); mediaType == "application/x-www-form-urlencoded" || mediaType == "text/plain" {
		v, _ := url.ParseQuery(strings.TrimSpace(string(body)))
		issued = v.Get("issued_token_type")
	} else {
		var ij struct {
			IssuedTokenType any `json:"issued_token_type"`
		}
		_ = json.Unmarshal(body, &ij) // parseResponse read it already
		switch v := ij.IssuedTokenType.(type) {
		case string:
			issued = v
		case nil:
		default:
			return nil, &Error{Class: Refused, Status: status, Description: "the provider's issued_token_type is not a string"}
		}
	}
	if i := strings.IndexFunc(issued, func(r rune) bool { return r >= utf8.RuneSelf || !tokenTypeChars(byte(r)) }); i >= 0 {
		return nil, &Error{Class: Refused, Status: status, Description: fmt.Sprintf(
			"the provider's issued_token_type holds %s at byte %d, where only a URI is allowed (RFC 8693 §3); the answer is refused", describeByte(issued[i]), i)}
	}
	switch {
	case issued == "" && requested != "":
		issued = requested
	case issued == "":
		issued = TokenTypeAccessToken
	case requested != "" && issued != requested:
		return nil, &Error{Class: Refused, Status: status, Description: fmt.Sprintf(
			"the provider issued a token of type %s where %s was requested", issued, requested)}
	}
	tok.IssuedTokenType = issued
	return tok, nil
}
