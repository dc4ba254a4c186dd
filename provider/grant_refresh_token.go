package provider

// refreshToken continues a chain (RFC 6749 §6). Scope is sent to narrow
// it, or where the dialect requires it on every refresh (refreshScopes):
// without, the new token keeps the scope of the chain. A
// narrowing's scope "MUST NOT include any scope not originally granted"
// (§6); the provider keeps the refresh token's own scope. Its resources ask
// for a token for those resources (RFC 8707 §2.2). The dialect's
// authorization scopes (offline_access) stay in a narrowed scope
// (withAuthScopes): Microsoft's v2 endpoint redeems one refresh token for
// another resource's token with "scope=https://management.azure.com/.default
// offline_access".
var refreshToken = grant{
	name:    GrantRefreshToken,
	oauth:   true,
	refresh: true,
	narrows: narrowScopes | narrowResources,
	params: func(e *Endpoint, in *TokenRequest) []param {
		params := []param{{"grant_type", string(GrantRefreshToken)}, {"refresh_token", in.RefreshToken}}
		var scopes []string
		if e.row().refreshScopes {
			scopes = e.Scopes
		}
		if in.Narrowing != nil && len(in.Narrowing.Scopes) > 0 {
			scopes = in.Narrowing.Scopes
		}
		if len(scopes) > 0 {
			params = append(params, param{"scope", e.withAuthScopes(scopes)})
		}
		return append(params, in.resourceParams()...)
	},
	needs: func(e *Endpoint) Credential {
		if e.ClientID == "" {
			return NeedsClientID // every dialect that refreshes this way names the client
		}
		return ""
	},
}
