package fakeprovider

import (
	"net/http"
)

// apiVideoToken mirrors, field for field, the example response of api.video's
// "Authentication" tutorial (https://docs.api.video/reference/authentication),
// plus a refresh token lifetime when SetRefreshTokenLifetime announces one.
type apiVideoToken struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	refreshExpiry
}

// apiVideoProblem is api.video's error shape (type, title, status, name), as
// its API reference documents the "Bad Request" answer of POST /auth/api-key
// (https://docs.api.video/reference/api/Advanced-authentication).
type apiVideoProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Name   string `json:"name,omitempty"` // the request attribute at fault
}

const apiVideoDocs = "https://docs.api.video/reference/"

func apiVideoError(w http.ResponseWriter, status int, typ, title, name string) {
	writeJSON(w, status, "application/problem+json", apiVideoProblem{
		Type:   apiVideoDocs + typ,
		Title:  title,
		Status: status,
		Name:   name,
	})
}

// handleAPIVideoAuth serves POST /auth/api-key with {"apiKey": "..."}.
func (s *Server) handleAPIVideoAuth(w http.ResponseWriter, x *exchange) {
	key, ok := apiVideoField(w, x, "apiKey")
	if !ok {
		return
	}
	if !s.apiKeyOK(key) {
		apiVideoError(w, http.StatusUnauthorized, "authentication-invalid-api-key", "The API key is invalid.", "apiKey")
		return
	}
	writeAPIVideoToken(w, s.issue(APIVideo, key, "", grantAPIKey, true))
}

// handleAPIVideoRefresh serves POST /auth/refresh with {"refreshToken": "..."}.
// The old refresh token becomes invalid (api.video's clients document that
// "when you retrieve a new refresh token, the old one becomes invalid"); the
// access token it came with stays valid until it expires. A token it will not
// redeem is refused in the shape SetRefreshRefusal sets: by default 400
// application/problem+json.
func (s *Server) handleAPIVideoRefresh(w http.ResponseWriter, x *exchange) {
	rt, ok := apiVideoField(w, x, "refreshToken")
	if !ok {
		return
	}
	out, err := s.redeem(APIVideo, rt, "", false, ask{})
	if err != nil {
		writeRefusal(w, err)
		return
	}
	writeAPIVideoToken(w, out)
}

// apiVideoField checks method and content type and extracts the one
// documented string field of the JSON body. On failure it has answered.
func apiVideoField(w http.ResponseWriter, x *exchange, field string) (string, bool) {
	if x.r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		apiVideoError(w, http.StatusMethodNotAllowed, "method-not-allowed", "The method is not allowed for this endpoint.", "")
		return "", false
	}
	if mediaType(x.r) != contentTypeJSON {
		apiVideoError(w, http.StatusBadRequest, "invalid-content-type", "The request Content-Type must be application/json.", "Content-Type")
		return "", false
	}
	m, err := decodeJSONObject(x.body)
	if err != nil {
		apiVideoError(w, http.StatusBadRequest, "invalid-json", "The request body is not a valid JSON object.", "")
		return "", false
	}
	v, _, err := jsonString(m, field)
	if err != nil {
		apiVideoError(w, http.StatusBadRequest, "invalid-attribute", "This attribute must be a string.", field)
		return "", false
	}
	if v == "" {
		apiVideoError(w, http.StatusBadRequest, "missing-attribute", "This attribute is required.", field)
		return "", false
	}
	return v, true
}

func writeAPIVideoToken(w http.ResponseWriter, out issued) {
	writeJSON(w, http.StatusOK, contentTypeJSON, apiVideoToken{
		TokenType:     "Bearer",
		ExpiresIn:     out.expiresIn,
		AccessToken:   out.access,
		RefreshToken:  out.refresh,
		refreshExpiry: out.refreshExpiry,
	})
}
