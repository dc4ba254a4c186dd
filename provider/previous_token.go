package provider

// PreviousToken says whether the provider ends an access token before its
// expiry because it issued the client another one. Most let every token live
// until it expires. Some revoke the previous access token when they rotate
// the refresh token: ory/fosite and the servers built on it (Ory Hydra, Ory
// Network) revoke the access token of the refreshed grant
// (https://github.com/ory/fosite, handler/oauth2/flow_refresh.go), GitHub ends the
// old user access token once its refresh token is used
// (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens).
// Others keep one active token per client, so any new token ends the last.
type PreviousToken string

const (
	PreviousTokenKept          PreviousToken = "never"        // every token lives until it expires
	PreviousTokenEndsOnRefresh PreviousToken = "on_refresh"   // a refresh ends the access token of the grant it refreshes
	PreviousTokenEndsOnNew     PreviousToken = "on_new_token" // any new token for the client ends the previous one
)

// Valid reports whether p is a known value.
func (p PreviousToken) Valid() bool {
	switch p {
	case PreviousTokenKept, PreviousTokenEndsOnRefresh, PreviousTokenEndsOnNew:
		return true
	}
	return false
}

// EndedBy reports whether obtaining a token by the refresh grant (refresh)
// or by a base grant (!refresh) ends the token obtained before it.
func (p PreviousToken) EndedBy(refresh bool) bool {
	return p == PreviousTokenEndsOnNew || (refresh && p == PreviousTokenEndsOnRefresh)
}

// EffectivePreviousToken is what the provider does to the previous token once
// the dialect's default is applied (PreviousTokenKept where it documents nothing).
func (e *Endpoint) EffectivePreviousToken() PreviousToken {
	switch {
	case e.PreviousToken != "":
		return e.PreviousToken
	case e.row().previousToken != "":
		return e.row().previousToken
	}
	return PreviousTokenKept
}
