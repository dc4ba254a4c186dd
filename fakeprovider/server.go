package fakeprovider

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Dialect names one of the token wire formats the fake speaks.
type Dialect string

// The dialects, named as tokenbroker's provider configs name them.
const (
	OAuth2     Dialect = "oauth2"
	OAuth2JSON Dialect = "oauth2_json"
	Echo360    Dialect = "echo360"
	APIVideo   Dialect = "apivideo"
	Endorsed   Dialect = "endorsed"
)

// Endpoint paths. Token endpoints are subject to latency and failure injection;
// PathWhoami is not.
const (
	PathOAuth2Token     = "/oauth2/token"
	PathOAuth2JSONToken = "/oauth/token"
	PathEcho360Token    = "/oauth2/access_token"
	PathAPIVideoAuth    = "/auth/api-key"
	PathAPIVideoRefresh = "/auth/refresh"
	PathEndorsedToken   = "/api/v1/auth/tokens"
	PathWhoami          = "/api/whoami"
)

// TokenPath is the path at which d mints a token from its base credentials.
func (d Dialect) TokenPath() string {
	switch d {
	case OAuth2:
		return PathOAuth2Token
	case OAuth2JSON:
		return PathOAuth2JSONToken
	case Echo360:
		return PathEcho360Token
	case APIVideo:
		return PathAPIVideoAuth
	case Endorsed:
		return PathEndorsedToken
	}
	return ""
}

// Endpoint describes one route, for listings such as cmd/fakeprovider's banner.
type Endpoint struct {
	Dialect Dialect // "" for the resource endpoint
	Method  string
	Path    string
	Purpose string
}

// Endpoints lists every route the fake serves.
func Endpoints() []Endpoint {
	return []Endpoint{
		{OAuth2, "POST", PathOAuth2Token, "RFC 6749 client_credentials and refresh_token (form body, Basic or body client auth)"},
		{OAuth2JSON, "GET|POST", PathOAuth2JSONToken, "client_credentials as a JSON body"},
		{Echo360, "POST", PathEcho360Token, "Echo360 client_credentials and refresh_token (form body or query)"},
		{APIVideo, "POST", PathAPIVideoAuth, `api.video {"apiKey": ...}`},
		{APIVideo, "POST", PathAPIVideoRefresh, `api.video {"refreshToken": ...}`},
		{Endorsed, "POST", PathEndorsedToken, "Endorsed client_credentials (JSON or form body)"},
		{"", "GET", PathWhoami, "protected resource: 200 for a valid Bearer access token, else 401"},
	}
}

// Grant names counted by Server.Grants.
const (
	grantClientCredentials = "client_credentials"
	grantRefreshToken      = "refresh_token"
	grantAPIKey            = "api_key"
)

// Options configure a Server. The zero value serves plain HTTP on a random
// loopback port.
type Options struct {
	// TLS serves HTTPS with a certificate signed by a freshly generated CA
	// (ECDSA P-256); the leaf is valid for 127.0.0.1, ::1 and localhost.
	// Clients trust it through CAPEM.
	TLS bool
	// Lifetime is the access token lifetime reported in expires_in and
	// enforced by Valid and /api/whoami. When <= 0 each dialect uses its
	// documented default: 1209600 s for Endorsed, 3600 s for the others.
	Lifetime time.Duration
	// Latency is slept before answering each token request; a request whose
	// context ends first gets no answer.
	Latency time.Duration
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// Now is the clock used for issue times and expiry checks, so tests can
	// run expiry scenarios without sleeping; default time.Now.
	Now func() time.Time
	// Logf, when set, receives one line per token request (dialect, endpoint,
	// grant, outcome) and the HTTP server's own errors. It never receives a
	// secret or a token.
	Logf func(format string, args ...any)
}

// Server is the fake provider. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	now  func() time.Time
	mux  *http.ServeMux

	// TLS material, generated in New so CAPEM is available before Start.
	caPEM   string
	cert    tls.Certificate
	certErr error

	done     chan struct{} // closed by Close: wakes handlers that sleep or hang
	inflight sync.WaitGroup

	// logMu makes Close a barrier for Logf: no call to Logf starts after
	// Close returns (a testing.T's Logf panics once its test has ended).
	logMu  sync.RWMutex
	logOff bool

	mu        sync.Mutex
	started   bool
	closed    bool
	srv       *http.Server
	serveDone chan struct{}
	url       string
	lifetime  time.Duration
	latency   time.Duration
	clients   map[string]string // client_id -> client_secret
	apiKeys   map[string]bool
	access    map[string]accessRecord
	refresh   map[string]*refreshRecord
	failures  []failRun
	calls     map[string]int
	total     int
	grants    map[string]int
	reuses    int
	last      map[string]RecordedRequest
}

type accessRecord struct {
	dialect Dialect
	client  string
	scope   string
	expires time.Time
}

// refreshRecord stays in the store once used, so a second use can be told
// apart from an unknown token and counted as a reuse.
type refreshRecord struct {
	dialect Dialect
	client  string
	scope   string
	used    bool
}

// New returns a Server that is not yet listening.
func New(opts Options) *Server {
	s := &Server{
		opts:     opts,
		now:      opts.Now,
		done:     make(chan struct{}),
		lifetime: opts.Lifetime,
		latency:  opts.Latency,
		clients:  map[string]string{},
		apiKeys:  map[string]bool{},
		access:   map[string]accessRecord{},
		refresh:  map[string]*refreshRecord{},
		calls:    map[string]int{},
		grants:   map[string]int{},
		last:     map[string]RecordedRequest{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.TLS {
		s.caPEM, s.cert, s.certErr = newCertificates(opts.Addr)
	}
	mux := http.NewServeMux()
	mux.Handle(PathOAuth2Token, s.tokenEndpoint(OAuth2, s.handleOAuth2))
	mux.Handle(PathOAuth2JSONToken, s.tokenEndpoint(OAuth2JSON, s.handleOAuth2JSON))
	mux.Handle(PathEcho360Token, s.tokenEndpoint(Echo360, s.handleEcho360))
	mux.Handle(PathAPIVideoAuth, s.tokenEndpoint(APIVideo, s.handleAPIVideoAuth))
	mux.Handle(PathAPIVideoRefresh, s.tokenEndpoint(APIVideo, s.handleAPIVideoRefresh))
	mux.Handle(PathEndorsedToken, s.tokenEndpoint(Endorsed, s.handleEndorsed))
	mux.HandleFunc(PathWhoami, s.handleWhoami)
	s.mux = mux
	return s
}

// Start listens and serves in the background.
func (s *Server) Start() error {
	if s.certErr != nil {
		return fmt.Errorf("fakeprovider: generating TLS certificates: %w", s.certErr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("fakeprovider: Start after Close")
	}
	if s.started {
		return errors.New("fakeprovider: already started")
	}
	addr := s.opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakeprovider: %w", err)
	}
	// HTTP/1.1 only: FailDropAfterConsume needs to hijack the connection,
	// which HTTP/2 does not allow.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(logWriter{s}, "", 0),
		Protocols:         &protocols,
	}
	scheme := "http"
	if s.opts.TLS {
		scheme = "https"
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{s.cert},
			MinVersion:   tls.VersionTLS12,
		}
	}
	s.url = scheme + "://" + dialAddr(ln.Addr())
	s.srv = srv
	s.started = true
	s.serveDone = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		if s.opts.TLS {
			_ = srv.ServeTLS(ln, "", "")
		} else {
			_ = srv.Serve(ln)
		}
	}(s.serveDone)
	return nil
}

// dialAddr turns a listener address into one a client can dial: an
// unspecified host (0.0.0.0, ::) becomes the matching loopback address.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// Close stops the server: it wakes handlers that sleep or hang, closes the
// listener and every connection, and waits for the handlers to return. It is
// safe to call more than once, and before Start.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	srv, serveDone := s.srv, s.serveDone
	s.mu.Unlock()

	// Connections go first, so a hanging handler that wakes up finds no
	// client to answer; then handlers still sleeping are woken.
	if srv != nil {
		_ = srv.Close()
		<-serveDone
	}
	close(s.done)
	// No new handler can register now (serveHTTP checks closed under mu), so
	// this Wait cannot race with an Add from zero.
	s.inflight.Wait()

	s.logMu.Lock()
	s.logOff = true
	s.logMu.Unlock()
}

// URL is the base URL, e.g. "http://127.0.0.1:41234"; "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// CAPEM is the PEM of the CA that signed the server certificate ("" without TLS).
func (s *Server) CAPEM() string { return s.caPEM }

// AddClient registers client credentials accepted by the oauth2, oauth2_json,
// echo360 and endorsed dialects. Adding an existing id replaces its secret.
func (s *Server) AddClient(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = secret
}

// AddAPIKey registers an api.video API key.
func (s *Server) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys[key] = true
}

// SeedRefreshToken issues a valid refresh token for clientID in dialect d, as
// if an earlier grant had returned it, for configs that start from a seed
// refresh token. For APIVideo, clientID is the API key the token belongs to.
// OAuth2JSON and Endorsed have no refresh grant, so a token seeded for them is
// never accepted. Seeding counts as no call and no grant.
func (s *Server) SeedRefreshToken(d Dialect, clientID string) string {
	rt := newToken("rt_")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh[rt] = &refreshRecord{dialect: d, client: clientID}
	return rt
}

// SetLifetime changes the access token lifetime for tokens issued from now
// on; d <= 0 restores the dialect defaults.
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetLatency changes the delay before each token response.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Calls counts requests to a path, e.g. "/oauth2/token", whatever their outcome.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// TotalCalls counts requests to token endpoints (all dialects), i.e. the
// upstream calls a broker made; requests to /api/whoami are not included.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Grants counts successful token issues per grant: "client_credentials",
// "refresh_token" (api.video refreshes included) or "api_key". A response
// dropped by FailDropAfterConsume still counts: the tokens were issued.
func (s *Server) Grants(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[grant]
}

// RefreshReuses counts attempts to use an already-consumed refresh token. A
// correct client keeps it at 0.
func (s *Server) RefreshReuses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reuses
}

// Valid reports whether accessToken was issued by this server and has not
// expired by the server's clock.
func (s *Server) Valid(accessToken string) bool {
	_, ok := s.lookupAccess(accessToken)
	return ok
}

func (s *Server) lookupAccess(token string) (accessRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.access[token]
	if !ok || !s.now().Before(rec.expires) {
		return accessRecord{}, false
	}
	return rec, true
}

// LastRequest is the last request recorded for a path; the zero value (Method
// "") when there was none since the last Reset.
func (s *Server) LastRequest(endpoint string) RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[endpoint]
}

// Reset zeroes the counters (Calls, TotalCalls, Grants, RefreshReuses) and
// forgets recorded requests. Clients, API keys, issued tokens, pending
// failures, lifetime and latency are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
	s.grants = map[string]int{}
	s.reuses = 0
	s.last = map[string]RecordedRequest{}
}

// clientOK checks client credentials in constant time, as a real server would.
func (s *Server) clientOK(id, secret string) bool {
	s.mu.Lock()
	want, ok := s.clients[id]
	s.mu.Unlock()
	return ok && subtle.ConstantTimeCompare([]byte(want), []byte(secret)) == 1
}

func (s *Server) apiKeyOK(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiKeys[key]
}

// lifetimeLocked is the access token lifetime for d. s.mu must be held.
func (s *Server) lifetimeLocked(d Dialect) time.Duration {
	switch {
	case s.lifetime > 0:
		return s.lifetime
	case d == Endorsed:
		return 1209600 * time.Second // the document's "expires_in": "1209600"
	default:
		return time.Hour
	}
}

// issued is the result of a successful grant.
type issued struct {
	access    string
	refresh   string // "" when the dialect issues none
	expiresIn int    // seconds, as reported and enforced
	scope     string // space-delimited
}

func (s *Server) issue(d Dialect, client, scope, grant string, withRefresh bool) issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(d, client, scope, grant, withRefresh)
}

func (s *Server) issueLocked(d Dialect, client, scope, grant string, withRefresh bool) issued {
	// Whole seconds, at least 1, and the token expires exactly when the
	// client is told it does.
	secs := int(s.lifetimeLocked(d) / time.Second)
	secs = max(secs, 1)
	out := issued{access: newToken("at_"), expiresIn: secs, scope: scope}
	s.access[out.access] = accessRecord{
		dialect: d,
		client:  client,
		scope:   scope,
		expires: s.now().Add(time.Duration(secs) * time.Second),
	}
	if withRefresh {
		out.refresh = newToken("rt_")
		s.refresh[out.refresh] = &refreshRecord{dialect: d, client: client, scope: scope}
	}
	s.grants[grant]++
	return out
}

var (
	errRefreshUnknown = errors.New("refresh token is unknown")
	errRefreshReused  = errors.New("refresh token was already used")
	errRefreshClient  = errors.New("refresh token was issued to another client")
	errRefreshScope   = errors.New("requested scope exceeds the scope originally granted")
)

// redeem consumes refresh token rt and issues a new access token and a new
// refresh token, atomically, so two concurrent uses of one token cannot both
// succeed. client is checked against the token's owner when checkClient is
// set. scope, when non-empty, may narrow the original scope.
func (s *Server) redeem(d Dialect, rt, client string, checkClient bool, scope string) (issued, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.refresh[rt]
	switch {
	case !ok:
		return issued{}, errRefreshUnknown
	case rec.used:
		s.reuses++
		return issued{}, errRefreshReused
	case rec.dialect != d:
		return issued{}, errRefreshUnknown
	case checkClient && rec.client != client:
		return issued{}, errRefreshClient
	}
	newScope := rec.scope
	if scope != "" {
		if rec.scope != "" && !scopeSubset(scope, rec.scope) {
			return issued{}, errRefreshScope
		}
		newScope = scope
	}
	rec.used = true
	return s.issueLocked(d, rec.client, newScope, grantRefreshToken, true), nil
}

func scopeSubset(requested, granted string) bool {
	have := map[string]bool{}
	for _, g := range strings.Fields(granted) {
		have[g] = true
	}
	for _, r := range strings.Fields(requested) {
		if !have[r] {
			return false
		}
	}
	return true
}

// newToken returns prefix + 32 random bytes, base64url.
func newToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// serveHTTP is the root handler: it refuses work once Close has begun, counts
// every request by path, and tracks in-flight handlers for Close.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "fakeprovider: closing", http.StatusServiceUnavailable)
		return
	}
	s.inflight.Add(1)
	s.calls[r.URL.Path]++
	s.mu.Unlock()
	defer s.inflight.Done()
	s.mux.ServeHTTP(w, r)
}

// handleWhoami is the protected resource: it accepts any unexpired access
// token this server issued, whatever the dialect.
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

// logf forwards to Options.Logf until Close returns.
func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf == nil {
		return
	}
	s.logMu.RLock()
	defer s.logMu.RUnlock()
	if s.logOff {
		return
	}
	s.opts.Logf(format, args...)
}

// logWriter routes the http.Server's error log (TLS handshake failures and
// the like) through logf.
type logWriter struct{ s *Server }

func (l logWriter) Write(p []byte) (int, error) {
	l.s.logf("fakeprovider: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
