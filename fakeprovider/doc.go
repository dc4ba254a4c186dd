// Package fakeprovider is a fake upstream token server that speaks the five
// token dialects tokenbroker must support, as the providers document them:
//
//	oauth2       POST /oauth2/token          RFC 6749 §4.4 client credentials and §6 refresh, form body
//	oauth2_json  GET|POST /oauth/token       OAuth 2.0 client credentials as a JSON body, no refresh grant
//	echo360      POST /oauth2/access_token   Echo360 / EchoVideo ("EchoVideo: Generating Client Credentials
//	                                         to Obtain Access Token", https://support.echo360.com/hc/en-us/articles/360035034252)
//	apivideo     POST /auth/api-key          api.video (https://docs.api.video/reference/authentication),
//	                                         refresh at POST /auth/refresh
//	endorsed     POST /api/v1/auth/tokens    Endorsed ("Access Tokens": POST https://endorsed.ai/api/v1/auth/tokens)
//
// plus a user's authorization for oauth2 (authcode.go, device.go): GET
// /oauth2/authorize (Server.Authorize plays the approving user; with
// SetDenyAuthorizations, the refusing one; with Options.ConsentPage a
// browser gets a page where a person approves or denies, consent.go), grant_type=authorization_code at
// /oauth2/token (single-use codes, same redirect_uri, PKCE S256 checked),
// POST /oauth2/device_authorization and the device_code grant (ApproveDevice,
// DenyDevice; slow_down when polled faster than the interval), and the
// discovery document at /.well-known/openid-configuration;
//
// plus the dialects that take signed JWTs (jwt.go), each verifying every
// signature with go-jose against public keys registered with
// AddAssertionKey or AddAssertionCertificate and refusing what the real
// service refuses (wrong aud, exp too far, iat in the future, a reused jti,
// no x5t#S256 for Microsoft): a GitHub App's installation tokens under
// PathGitHubAPI (github.go), Google's service account grant (google.go),
// Salesforce's JWT bearer flow (salesforce.go), Microsoft's certificate
// credentials (microsoft.go), Okta's service apps (okta.go), and oauth2's
// private_key_jwt client authentication (RFC 7523 §2.2) at /oauth2/token;
//
// plus RFC 7009 token revocation at POST /oauth2/revoke (revoke.go) and the
// account behind a user's tokens (account.go: SetAccount; OpenID Connect
// userinfo at /oauth2/userinfo, GitHub's GET /user under PathGitHubAPI);
//
// plus GET /api/whoami, a protected resource that answers 200 for a valid
// (unexpired, unrevoked) "Authorization: Bearer <access token>" and 401
// otherwise, so end-to-end tests can prove a token is accepted.
//
// It is used in-process by unit tests (over real loopback HTTP or HTTPS) and as
// the demo upstream of `make dev` (see cmd/fakeprovider). It holds no Vault types.
//
// The fake is deliberately strict where a document is precise, so a client that
// drifts from the documented wire format fails here rather than in production,
// and it counts what clients do (calls, grants, refresh token reuse) so tests can
// assert on behaviour such as "one upstream call" or "a refresh token is never
// sent twice". Failure injection (Server.Fail) covers the ways real upstreams
// misbehave: 5xx, HTML pages, rate limiting, dropped connections after the
// refresh token was consumed, hangs, secrets echoed in errors, and malformed
// or oversized bodies.
//
// # Switches
//
// Where a document is unclear, or real providers differ, a switch lets a test
// drive the fake both ways. Each is safe to change at any time; Reset keeps
// them. Defaults (the zero values) are in the middle column.
//
//	switch                                  default                         other positions
//	SetEcho360Encoding(e)                   Echo360FormOnly: form body,     Echo360QueryOnly (URL query of a POST,
//	                                        query params refused (400       body refused); Echo360Either (form body,
//	                                        invalid_request)                query or both; the body wins)
//	SetRefreshRefusal(d, shape)             RefuseDefault: invalid_grant    RefuseInvalidGrant, RefuseInvalidRequest,
//	  how d refuses an unknown, used,       (400); api.video: RFC 7807      RefuseInvalidToken (401),
//	  expired or other client's token       problem+json (400)              RefuseUnsupportedGrantType,
//	                                                                        RefuseErrorIn200 (GitHub's
//	                                                                        bad_refresh_token), RefusePlainText403
//	                                                                        (a gateway's), RefuseProblemJSON
//	RefuseRefreshes(n, shape)               nothing queued                  the next n refresh requests are refused
//	                                                                        in shape even with a valid token;
//	                                                                        base grants unaffected
//	SetOAuth2JSONRefreshTokens(on)          off: no refresh_token issued    on: refresh_token issued; either way
//	                                                                        grant_type=refresh_token gets 400
//	                                                                        unsupported_grant_type
//	SetClientAuthFailure(d, f)              ClientAuth401InvalidClient      ClientAuth400InvalidClient;
//	  how oauth2, oauth2_json, echo360      (RFC 6749 §5.2)                 ClientAuthBare400 (no error code; for
//	  and endorsed refuse a bad client                                      endorsed {"is_error":true,"message"})
//	SetRefreshTokenLifetime(d, field)       refresh tokens never expire,    expire d after issue by Options.Now,
//	                                        nothing announced               refused in d's refusal shape; announced
//	                                                                        as refresh_token_expires_in (GitHub)
//	                                                                        or x_refresh_token_expires_in (Intuit)
//	SetRefreshReuseGrace(d)                 0: a rotated token is refused   within d of its rotation a rotated
//	                                        and counted in RefreshReuses    token works again (Xero: 30 min, Okta:
//	                                                                        30 s), counted in RefreshGraceReuses
//	SetPreviousTokenRevocation(m)           PreviousTokensKept: an access   RevokePreviousOnRefresh: redeeming a
//	                                        token lives until it expires,   refresh token revokes the access tokens
//	                                        whatever is issued after it     of its grant (fosite, Ory Hydra);
//	                                                                        RevokePreviousOnNewToken: one active
//	                                                                        token per client, any grant; Valid and
//	                                                                        whoami refuse a revoked token, RevokedAt
//	                                                                        says when it was revoked
//	SetRevocationKeepsAccessTokens(keep)    false: revoking a refresh       true: its grant's access tokens stay
//	                                        token at /oauth2/revoke         valid until they expire
//	                                        revokes its grant's access
//	                                        tokens (RFC 7009 §2.1)
//	SetAccount(sub, email)                  sub "fake-user-1", email        the account that approves from now on
//	                                        "user1@example.test"            (a login_hint may name another)
//	SetClientPolicy(id, p)                  every client unbounded          id's scopes (invalid_scope), audiences
//	  narrowing.go: what a client may ask                                   and resources (invalid_target, RFC 8707)
//	  for at /oauth2/token                                                  bounded; a nil list leaves a kind unbounded;
//	                                                                        IgnoresRefreshScope: a narrowed refresh is
//	                                                                        issued the whole scope (RFC 6749 §3.3)
//	SetTokenExchange(m)                     TokenExchangeOff: the RFC       TokenExchangeAnyClient: any client may
//	  tokenexchange.go                      8693 grant is                   exchange an access token of the server;
//	                                        unsupported_grant_type          TokenExchangeSameClient: only its own
//	SetMicrosoftRefreshScope(m)             MicrosoftRefreshScopeRequired:  MicrosoftRefreshScopeOptional: without
//	  microsoft.go                          a refresh without scope is      scope, the consent's first resource
//	                                        invalid_request AADSTS90014
//
// Counters: RefreshReuses counts a refresh token presented again after it was
// consumed (outside any grace) or refused (expired, or hit by RefuseRefreshes),
// since a client must never send a refresh token twice; RefreshGraceReuses
// counts reuses within the grace. A forced refusal consumes the token only
// when its shape says the token is dead (invalid_grant, invalid_token,
// bad_refresh_token, api.video's problem); after the others it stays
// redeemable, though presenting it again still counts. A refusal because the
// token belongs to another client, or for a wider scope, leaves it untouched.
//
// # Readings of the documents
//
// Where a document is silent the fake chooses, and says so here:
//
//   - echo360: refresh needs only client_id and refresh_token; a client_secret
//     sent along is accepted but, if sent, must be correct. Client
//     authentication is by parameters only: an Authorization header is
//     ignored, so a client that sends HTTP Basic instead of client_secret gets
//     invalid_client. Refresh tokens never expire (unless
//     SetRefreshTokenLifetime says otherwise), are single-use, and are bound to
//     the client_id they were issued to. A JSON body is rejected
//     (invalid_request).
//   - oauth2_json: the document says GET but every example is a POST, so both
//     are accepted; either way the credentials must be a JSON body with
//     Content-Type application/json. grant_type is checked before the
//     credentials are required, so a refresh attempt gets
//     unsupported_grant_type.
//   - apivideo: the tutorial shows only the success case; the API reference
//     documents errors in the problem shape {type, title, status, name}, sent
//     as application/problem+json. An unknown API key is answered 401
//     (api.video's client docs list only 400 for this endpoint, so a client
//     must treat both as an authentication failure); malformed requests and
//     unknown or reused refresh tokens are 400. Unknown JSON fields are
//     ignored, but the documented field (apiKey, refreshToken) must be present.
//   - endorsed: a request without Content-Type is parsed as a form, since the
//     document says the header defaults to application/x-www-form-urlencoded.
//     An empty scope (absent, "", or []) means the default ["all:read",
//     "all:write"]. The document shows no error answer; the fake answers
//     {"is_error": true, "message": …} plus an invented OAuth-style "error"
//     code: invalid_request for a malformed request or a grant_type other
//     than client_credentials, invalid_client (401) for bad credentials
//     unless SetClientAuthFailure says otherwise.
//   - oauth2: a scope is echoed in the response only when one was requested
//     (RFC 6749 §5.1 makes it optional when it equals the request). A refresh
//     may narrow the scope but not widen it (invalid_scope), and ask one of
//     the resources its token was granted for (RFC 8707 §2.2; else
//     invalid_target); the new refresh token keeps the original scope and
//     resources (RFC 6749 §6). client_secret, refresh_token, subject_token
//     or actor_token in the URL query is rejected, as are repeated
//     parameters (§3.2), but for resource (RFC 8707 §2.1) and a token
//     exchange's audience (RFC 8693 §2.1). A token's resources and audiences
//     are its Audiences; IssuedFor counts tokens per scope and audiences.
//   - microsoft: a user's refresh token redeems for any resource of its
//     consent, the first scope's (microsoft.go); the token used stays valid.
//   - github_app: an installation token names at most 500 repositories;
//     a repository or permission beyond the installation's is 422.
//   - expires_in is whole seconds, at least 1, and the token expires exactly
//     then: the fake enforces what it reports. Without a lifetime set, Endorsed
//     reports its documented "1209600" and every other dialect 3600.
//   - Every response of a token endpoint carries Cache-Control: no-store and
//     Pragma: no-cache (RFC 6749 §5.1), errors included.
//   - The fake speaks HTTP/1.1 only, so FailDropAfterConsume can hijack and
//     close the connection.
package fakeprovider
