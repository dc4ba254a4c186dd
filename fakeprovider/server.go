package fakeprovider

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
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
	// ConsentPage makes a GET of the authorization endpoint answer an HTML
	// page where a person picks the account and approves or denies, in a
	// POST back to the endpoint (consent.go), instead of approving at once
	// as the SetAccount account. Respond and Authorize are unchanged.
	ConsentPage bool
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

	// Injected behaviour: Fail and RefuseRefreshes queue up.
	failures       queue[FailMode]
	forcedRefusals queue[RefusalShape]

	// Strictness switches, set by the Set* methods; zero values are defaults.
	echo360Encoding    Echo360Encoding
	refusals           map[Dialect]RefusalShape
	clientAuth         map[Dialect]ClientAuthFailure
	oauth2JSONRefresh  bool
	refreshLifetime    time.Duration
	refreshExpiryField RefreshExpiryField
	reuseGrace         time.Duration
	previousRevocation PreviousTokenRevocation
	// policies bound what clients may ask for (narrowing.go);
	// tokenExchange turns RFC 8693 on at PathOAuth2Token (tokenexchange.go);
	// microsoftRefreshScope: whether Microsoft's refresh needs a scope (microsoft.go).
	policies              map[string]ClientPolicy
	tokenExchange         TokenExchangeMode
	microsoftRefreshScope MicrosoftRefreshScope

	// families numbers grant families (revocation.go).
	families uint64

	// accounts are the fake's users by sub, account the one that approves
	// next, familyAccount the account of each grant family a user
	// authorized (account.go).
	accounts      map[string]*fakeAccount
	account       string
	familyAccount map[uint64]string
	// revocationKeepsAccess: revoking a refresh token at PathRevoke leaves
	// the access tokens of its grant valid (revoke.go).
	revocationKeepsAccess bool

	// user holds authorization codes and device authorizations (authcode.go, device.go).
	user userFlows
	// signed holds the keys and jti values of the signing dialects (jwt.go).
	signed signedFlows

	// Counters, zeroed by Reset.
	calls       map[string]int
	total       int
	grants      map[string]int
	reuses      int
	graceReuses int
	// revokedCount counts access tokens revoked under
	// SetPreviousTokenRevocation.
	revokedCount int
	// revocations counts tokens revoked at PathRevoke.
	revocations int
	last        map[string]RecordedRequest
	// issuedFor counts access tokens by what they are for (IssuedFor).
	issuedFor map[string]int
}

// New returns a Server that is not yet listening.
func New(opts Options) *Server {
	s := &Server{
		opts:       opts,
		now:        opts.Now,
		done:       make(chan struct{}),
		lifetime:   opts.Lifetime,
		latency:    opts.Latency,
		clients:    map[string]string{},
		apiKeys:    map[string]bool{},
		access:     map[string]accessRecord{},
		refresh:    map[string]*refreshRecord{},
		refusals:   map[Dialect]RefusalShape{},
		clientAuth: map[Dialect]ClientAuthFailure{},
		calls:      map[string]int{},
		grants:     map[string]int{},
		last:       map[string]RecordedRequest{},
		issuedFor:  map[string]int{},

		accounts:      map[string]*fakeAccount{},
		familyAccount: map[uint64]string{},
	}
	s.setAccountLocked(DefaultAccountSubject, DefaultAccountEmail)
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
	mux.HandleFunc(PathUserinfo, s.handleUserinfo)
	mux.Handle(PathRevoke, s.tokenEndpoint(OAuth2, s.handleRevoke))
	s.registerUserFlows(mux)
	s.registerSigned(mux)
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
