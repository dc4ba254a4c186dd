package fakeprovider

import (
	"net/http"
)

// apiVideoToken mirrors the example response of seed 001, field for field.
type apiVideoToken struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// apiVideoProblem is api.video's error shape (type, title, status, name).
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
// The old refresh token becomes invalid; the access token it came with stays
// valid until it expires.
func (s *Server) handleAPIVideoRefresh(w http.ResponseWriter, x *exchange) {
	rt, ok := apiVideoField(w, x, "refreshToken")
	if !ok {
		return
	}
	out, err := s.redeem(APIVideo, rt, "", false, "")
	if err != nil {
		apiVideoError(w, http.StatusBadRequest, "authentication-invalid-refresh-token", "The refresh token is either expired or invalid.", "refreshToken")
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
		TokenType:    "Bearer",
		ExpiresIn:    out.expiresIn,
		AccessToken:  out.access,
		RefreshToken: out.refresh,
	})
}
