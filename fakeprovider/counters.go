package fakeprovider

// Calls counts requests to a path, e.g. "/oauth2/token", whatever their outcome.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// TotalCalls counts requests to token endpoints (all dialects) and to the
// revocation endpoint, i.e. the upstream calls a broker made; requests to
// /api/whoami and the userinfo endpoints are not included.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Grants counts successful token issues per grant: "client_credentials",
// "refresh_token" (api.video refreshes and reuses within a grace included),
// "api_key", "token_exchange", "installation_token" or "jwt_bearer". A response dropped by FailDropAfterConsume still counts: the
// tokens were issued.
func (s *Server) Grants(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[grant]
}

// RefreshReuses counts presentations of a refresh token that the client had
// already presented: after it was consumed by a refresh (outside any grace
// set by SetRefreshReuseGrace), or after it was refused. The provider
// refuses such a presentation, except one of a token that a forced refusal
// left unconsumed (see RefuseRefreshes): that one succeeds, and still counts.
// A correct client keeps it at 0: it never sends a refresh token twice.
func (s *Server) RefreshReuses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuses
}

// RefreshGraceReuses counts presentations of an already rotated refresh
// token within the grace set by SetRefreshReuseGrace. They are not in
// RefreshReuses.
func (s *Server) RefreshGraceReuses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.graceReuses
}

// LastRequest is the last request recorded for a path; the zero value (Method
// "") when there was none since the last Reset.
func (s *Server) LastRequest(endpoint string) RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[endpoint]
}

// Reset zeroes the counters (Calls, TotalCalls, Grants, IssuedFor,
// RefreshReuses, RefreshGraceReuses, RevokedTokens, Revocations) and
// forgets recorded requests. Clients, API keys,
// issued tokens, pending failures and refusals, lifetime, latency and every
// switch are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
	s.grants = map[string]int{}
	s.reuses = 0
	s.graceReuses = 0
	s.revokedCount = 0
	s.revocations = 0
	s.last = map[string]RecordedRequest{}
	s.issuedFor = map[string]int{}
}
