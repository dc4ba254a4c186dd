// Package fakeprovider is a fake upstream token server that speaks the five
// token dialects tokenbroker must support, as the provider documents describe
// them (see the seeds/ documents next to the design brief):
//
//	oauth2       POST /oauth2/token          RFC 6749 §4.4 client credentials and §6 refresh, form body
//	oauth2_json  GET|POST /oauth/token       client credentials as a JSON body (seed 003)
//	echo360      POST /oauth2/access_token   Echo360 / EchoVideo (seed 000)
//	apivideo     POST /auth/api-key          api.video (seed 001), refresh at POST /auth/refresh
//	endorsed     POST /api/v1/auth/tokens    Endorsed (seed 002)
//
// plus GET /api/whoami, a protected resource that answers 200 for a valid
// "Authorization: Bearer <access token>" and 401 otherwise, so end-to-end tests
// can prove a token is accepted.
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
// # Readings of the documents
//
// Where a document is ambiguous the tolerant reading was chosen:
//
//   - echo360: parameters are accepted in the form body or in the URL query
//     string (the Swagger page shows both); when a parameter is in both, the body
//     wins. A JSON body is rejected (invalid_request). A refresh needs only
//     client_id and refresh_token; a client_secret sent along is accepted but,
//     if sent, must be correct. Client authentication is by parameters only: an
//     Authorization header is ignored, so a client that sends HTTP Basic instead
//     of client_secret gets invalid_client. Refresh tokens never expire, are
//     single-use, and are bound to the client_id they were issued to.
//   - oauth2_json: the document says GET but every example is a POST, so both
//     are accepted; either way the credentials must be a JSON body with
//     Content-Type application/json.
//   - apivideo: the document shows only the success case. Errors use api.video's
//     problem shape {type, title, status, name} with Content-Type
//     application/problem+json. An unknown API key is answered 401 (api.video's
//     client docs list only 400 for this endpoint, so a client must treat both
//     as an authentication failure); malformed requests and unknown or reused
//     refresh tokens are 400. Unknown JSON fields are ignored, but the documented
//     field (apiKey, refreshToken) must be present.
//   - endorsed: a request without Content-Type is parsed as a form, since the
//     document says the header defaults to application/x-www-form-urlencoded.
//     An empty scope (absent, "", or []) means the default ["all:read",
//     "all:write"]. A missing or non-client_credentials grant_type is 400
//     invalid_request (the document names no other error code).
//   - oauth2: a scope is echoed in the response only when one was requested
//     (RFC 6749 §5.1 makes it optional when it equals the request). A refresh
//     may narrow the scope but not widen it (invalid_scope). client_secret or
//     refresh_token in the URL query is rejected, as are repeated parameters
//     (§3.2).
//   - expires_in is whole seconds, at least 1, and the token expires exactly
//     then: the fake enforces what it reports. Without a lifetime set, Endorsed
//     reports its documented "1209600" and every other dialect 3600.
//   - Every response of a token endpoint carries Cache-Control: no-store and
//     Pragma: no-cache (RFC 6749 §5.1), errors included.
//   - The fake speaks HTTP/1.1 only, so FailDropAfterConsume can hijack and
//     close the connection.
package fakeprovider
