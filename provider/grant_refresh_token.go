package provider

// refreshToken continues a chain (RFC 6749 §6). Scope is not sent: the new
// token keeps the scope of the chain.
var refreshToken = grant{
	name:    GrantRefreshToken,
	oauth:   true,
	refresh: true,
	params: func(_ *Endpoint, token string) []param {
		return []param{{"grant_type", string(GrantRefreshToken)}, {"refresh_token", token}}
	},
	needs: func(e *Endpoint) Credential {
		if e.ClientID == "" {
			return NeedsClientID // every dialect that refreshes this way names the client
		}
		return ""
	},
}
