package fakeprovider

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// endorsedToken mirrors, field for field, the example response of Endorsed's
// "Access Tokens" API page (POST https://endorsed.ai/api/v1/auth/tokens),
// including expires_in as a string.
type endorsedToken struct {
	IsError     bool     `json:"is_error"`
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	ExpiresIn   string   `json:"expires_in"`
	Scope       []string `json:"scope"`
}

var endorsedScopes = []string{"all:read", "all:write"}

// endorsedError answers {"is_error": true, "message": …}, the error
// counterpart of the documented success body, plus an OAuth-style "error"
// code unless code is "". Endorsed documents no error answer at all, so the
// codes are the fake's invention (see SetClientAuthFailure for the shape
// without one).
func endorsedError(w http.ResponseWriter, status int, code, message string) {
	body := map[string]any{"is_error": true, "message": message}
	if code != "" {
		body["error"] = code
	}
	writeJSON(w, status, contentTypeJSON, body)
}

// handleEndorsed serves POST /api/v1/auth/tokens: client credentials as JSON
// (scope a string array) or as a form (scope space-delimited); a request with
// no Content-Type is a form, the documented default.
func (s *Server) handleEndorsed(w http.ResponseWriter, x *exchange) {
	r := x.r
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		endorsedError(w, http.StatusMethodNotAllowed, "invalid_request", "Only POST is supported")
		return
	}
	var id, secret, grant string
	var scopes []string
	switch mediaType(r) {
	case contentTypeJSON:
		m, err := decodeJSONObject(x.body)
		if err != nil {
			endorsedError(w, http.StatusBadRequest, "invalid_request", "The request body must be a JSON object")
			return
		}
		for _, f := range []struct {
			name string
			dst  *string
		}{{"client_id", &id}, {"client_secret", &secret}, {"grant_type", &grant}} {
			if *f.dst, _, err = jsonString(m, f.name); err != nil {
				endorsedError(w, http.StatusBadRequest, "invalid_request", err.Error())
				return
			}
		}
		if raw, ok := m["scope"]; ok && raw != nil {
			list, ok := raw.([]any)
			if !ok {
				endorsedError(w, http.StatusBadRequest, "invalid_request", "scope must be an array of strings for application/json")
				return
			}
			for _, v := range list {
				str, ok := v.(string)
				if !ok {
					endorsedError(w, http.StatusBadRequest, "invalid_request", "scope must be an array of strings for application/json")
					return
				}
				scopes = append(scopes, str)
			}
		}
	case contentTypeForm, "":
		form, err := url.ParseQuery(string(x.body))
		if err != nil {
			endorsedError(w, http.StatusBadRequest, "invalid_request", "Malformed form body")
			return
		}
		id, secret, grant = form.Get("client_id"), form.Get("client_secret"), form.Get("grant_type")
		scopes = strings.Fields(form.Get("scope"))
	default:
		endorsedError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json or application/x-www-form-urlencoded")
		return
	}

	if id == "" || secret == "" {
		endorsedError(w, http.StatusBadRequest, "invalid_request", "client_id and client_secret are required")
		return
	}
	if grant != grantClientCredentials {
		endorsedError(w, http.StatusBadRequest, "invalid_request", "Only client_credentials is currently supported")
		return
	}
	scopes, ok := normalizeEndorsedScopes(scopes)
	if !ok {
		endorsedError(w, http.StatusBadRequest, "invalid_request", "Supported scopes: all:read and all:write")
		return
	}
	if !s.clientOK(id, secret) {
		s.refuseClient(w, Endorsed, "Invalid client credentials", false)
		return
	}
	out := s.issue(Endorsed, id, strings.Join(scopes, " "), grantClientCredentials, false)
	writeJSON(w, http.StatusOK, contentTypeJSON, endorsedToken{
		IsError:     false,
		AccessToken: out.access,
		TokenType:   "Bearer",
		ExpiresIn:   strconv.Itoa(out.expiresIn),
		Scope:       scopes,
	})
}

// normalizeEndorsedScopes applies the default, drops duplicates (keeping the
// request's order) and rejects unsupported scopes.
func normalizeEndorsedScopes(requested []string) ([]string, bool) {
	if len(requested) == 0 {
		return slices.Clone(endorsedScopes), true
	}
	var out []string
	for _, sc := range requested {
		if !slices.Contains(endorsedScopes, sc) {
			return nil, false
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, true
}
