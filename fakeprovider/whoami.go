package fakeprovider

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// handleWhoami is the protected resource: it accepts any unexpired access
// token this server issued, whatever the dialect, unless it was revoked
// (SetPreviousTokenRevocation).
func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, "application/json", map[string]any{"ok": false, "error": "method_not_allowed"})
		return
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	rec, ok := s.lookupAccess(strings.TrimSpace(token))
	if !strings.EqualFold(scheme, "Bearer") || !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, "application/json", map[string]any{"ok": false, "error": "invalid_token"})
		return
	}
	remaining := int(rec.expires.Sub(s.now()) / time.Second)
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"ok":         true,
		"client":     displayClient(rec.dialect, rec.client),
		"dialect":    rec.dialect,
		"scope":      rec.scope,
		"expires_in": remaining,
	})
}

// displayClient names a token's owner without revealing an API key, which is
// itself the api.video credential.
func displayClient(d Dialect, client string) string {
	if d != APIVideo {
		return client
	}
	sum := sha256.Sum256([]byte(client))
	return "apikey-" + hex.EncodeToString(sum[:4])
}
