package provider

// api.video's own grants (https://docs.api.video/reference/api/Authentication):
// POST /auth/api-key with {"apiKey": …} mints, and POST /auth/refresh with
// {"refreshToken": …} continues the chain. Neither names a client.

var apiVideoKey = grant{
	name:   GrantAPIKey,
	params: func(e *Endpoint, _ *TokenRequest) []param { return []param{{"apiKey", e.APIKey}} },
	needs: func(e *Endpoint) Credential {
		if e.APIKey == "" {
			return NeedsAPIKey
		}
		return ""
	},
}

var apiVideoRefresh = grant{
	name:    GrantRefreshToken,
	refresh: true,
	params:  func(_ *Endpoint, in *TokenRequest) []param { return []param{{"refreshToken", in.RefreshToken}} },
}
