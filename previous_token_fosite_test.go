package tokenbroker

// Issue 20's proof against a real, strict OAuth server: ory/fosite
// (internal/fositeop), which revokes the previous access token when it
// rotates a refresh token, and a token's whole family when a refresh token
// comes back. For ~25 s of real time, readers read creds/<name> all the time
// and as Vault Agent does (again at ttl + 1 s), and a prober asks fosite
// every probeEvery whether each token served is still active. A token served
// must be active when the read returns and until the expires_at the read
// gave it (less probeMargin).
//
// The backend runs on the real clock here: fosite issues and revokes by
// time.Now, and the backend's scheduler must renew when fosite's tokens are
// really due.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/internal/fositeop"
)

const (
	// fositeLifespan is fosite's access token lifetime, refresh_ahead the
	// window before expiry in which the chain renews: a renewal every ~4 s.
	fositeLifespan     = 6 * time.Second
	fositeRefreshAhead = 2 // seconds
	// fositeRun is how long readers read. The prober then goes on until the
	// expires_at of every token served has passed (at most fositeLifespan).
	fositeRun = 22 * time.Second
	// probeEvery is the prober's period.
	probeEvery = 50 * time.Millisecond
	// probeMargin: a token found inactive later than its expires_at less
	// this is not counted. The plugin stamps a token's expiry when the
	// answer arrives, fosite when it issued it: the answer's transit (a few
	// ms, tens under -race on busy cores) can put the plugin's expires_at
	// after fosite's real expiry. A revocation by a renewal the read did not
	// count on lands seconds early, far outside it.
	probeMargin = 50 * time.Millisecond
	// continuousReaders read every 20-50 ms; agentReaders as Vault Agent does.
	continuousReaders = 3
	agentReaders      = 2
)

func TestFositeNeverServesATokenItsRenewalRevokes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ~30 s of real time against fosite")
	}
	type fositeCase struct {
		name     string
		clientID string
		// connect: a user connects the chain in a browser (authorization
		// code with PKCE, then the refresh grant); else client credentials.
		connect bool
		extra   map[string]any
		// wantPreviousToken is status' revokes_previous_token.
		wantPreviousToken string
		// wantCaught: the prober must catch tokens revoked before their
		// expires_at (the case that proves the test has teeth); else none.
		wantCaught bool
	}
	cases := []fositeCase{
		{name: "connected chain with on_refresh serves only tokens that live to their expires_at",
			clientID: "chain-on-refresh", connect: true,
			extra:             map[string]any{"revokes_previous_token": "on_refresh"},
			wantPreviousToken: "on_refresh"},
		{name: "client credentials with the default setting serves only tokens that live to their expires_at",
			clientID: "client-credentials",
			extra:    map[string]any{"auth_style": "body"}, // client_secret_post; the chains use Basic
			// fosite does not revoke one client-credentials token for another.
			wantPreviousToken: "never"},
		{name: "connected chain with never is caught serving tokens its renewal revokes",
			clientID: "chain-never", connect: true,
			extra:             map[string]any{"revokes_previous_token": "never"},
			wantPreviousToken: "never", wantCaught: true},
	}
	var clients []fositeop.Client
	for _, c := range cases {
		clients = append(clients, fositeop.Client{ID: c.clientID, Secret: "secret-of-" + c.clientID, RedirectURI: testRedirect})
	}
	op, err := fositeop.Start(fositeop.Options{AccessTokenLifespan: fositeLifespan, Clients: clients})
	if err != nil {
		t.Fatalf("start fosite: %v", err)
	}
	t.Cleanup(op.Close)

	// Every case runs at once, for fositeRun of real time (parallel subtests
	// would run two at a time on 2 cores); then each case's subtest judges
	// what its readers and prober saw.
	type caseRun struct {
		e    *env
		logs *syncBuffer
		l    *ledger
	}
	runs := make([]caseRun, len(cases))
	for i, c := range cases {
		e, logs := newRealClockEnv(t)
		data := map[string]any{
			"provider":      "oauth2",
			"token_url":     op.TokenURL,
			"client_id":     c.clientID,
			"client_secret": "secret-of-" + c.clientID,
			"scopes":        "read",
			"refresh_ahead": fositeRefreshAhead,
		}
		if c.connect {
			data["auth_url"], data["redirect_uri"], data["scopes"] = op.AuthURL, testRedirect, "offline,read"
		}
		e.mustDo(logical.CreateOperation, "config/u", withFields(data, c.extra))
		if c.connect {
			connectThroughFosite(t, e, "u")
		}
		runs[i] = caseRun{e: e, logs: logs}
	}
	var all sync.WaitGroup
	for i := range runs {
		all.Go(func() { runs[i].l = runReaders(runs[i].e, op, "u") })
	}
	all.Wait()

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, logs, l := runs[i].e, runs[i].logs, runs[i].l
			e.t = t

			presented, reused := op.RefreshTokens(c.clientID)
			renewals := op.Grants(c.clientID, "refresh_token") + op.Grants(c.clientID, "client_credentials")
			t.Logf("reads %d (Agent-like %d, failed %d, over 100 ms %d, slowest %s), distinct tokens %d, renewals %d (refresh tokens presented %d, reused %d), "+
				"served inactive %d (checked too late to tell %d), revoked before expires_at %d, Agent re-reads planned after expires_at %d",
				l.reads, l.agentReads, len(l.readErrors), l.slowReads, l.slowest.Round(time.Millisecond), len(l.tokens), renewals, presented, reused,
				len(l.servedInactive), l.checkedLate, len(l.revokedEarly), l.agentLate)

			if reused != 0 {
				t.Errorf("refresh tokens presented again at fosite = %d, want 0", reused)
			}
			if len(l.readErrors) > 0 {
				t.Errorf("%d reads failed or contradicted themselves, want none; first: %s", len(l.readErrors), l.readErrors[0])
			}
			// ~22 s of 6 s tokens renewed at 4 s: at least 4 renewals (fewer means the test saw little).
			if renewals < 4 || len(l.tokens) < 4 {
				t.Errorf("renewals %d, distinct tokens served %d; want at least 4 each", renewals, len(l.tokens))
			}
			caught := len(l.servedInactive) + len(l.revokedEarly)
			switch {
			case c.wantCaught && len(l.revokedEarly) == 0:
				t.Errorf("the prober caught no token revoked before its expires_at, want some: the test has no teeth")
			case !c.wantCaught && caught > 0:
				t.Errorf("%d tokens were served inactive and %d revoked before their expires_at, want 0:\n%s",
					len(l.servedInactive), len(l.revokedEarly), strings.Join(append(l.servedInactive, l.revokedEarly...), "\n"))
			}
			if c.wantPreviousToken != "never" && l.agentLate > 0 {
				t.Errorf("%d Agent re-reads were planned (ttl + 1 s) after the token's expires_at, want 0: %s", l.agentLate, l.agentLateFirst)
			}

			st := e.status("u")
			for key, want := range map[string]any{
				"failures": "0", "consecutive_failures": "0", "needs_refresh_token": "false", "state_saved": "true", "healthy": "true",
				"revokes_previous_token": c.wantPreviousToken, "refresh_token_held": fmt.Sprint(c.connect),
			} {
				if got := fmt.Sprint(st[key]); got != want {
					t.Errorf("status %s = %s, want %s; status: %v", key, got, want, st)
				}
			}
			if c.wantPreviousToken != "never" {
				if at, _ := st["next_renewal_at"].(string); at == "" {
					t.Errorf("status next_renewal_at is empty, want the planned renewal; status: %v", st)
				}
			}

			secrets := []string{"secret-of-" + c.clientID}
			for tok := range l.tokens {
				secrets = append(secrets, tok)
			}
			if rt := e.storedState("u").RefreshToken; rt != "" {
				secrets = append(secrets, rt)
			}
			for _, s := range secrets {
				if strings.Contains(logs.String(), s) {
					t.Fatalf("a token or secret reached the plugin's log")
				}
			}
		})
	}
}

// newRealClockEnv is newEnv without the fake provider and with the real
// clock: a backend on in-memory storage, initialized as a mount is, so its
// refresh scheduler runs. Its log (debug) goes to the buffer returned.
func newRealClockEnv(t *testing.T) (*env, *syncBuffer) {
	t.Helper()
	e := &env{t: t, storage: &faultyStorage{InmemStorage: &logical.InmemStorage{}}}
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	b := newBackend(conf) // b.now stays time.Now
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatalf("backend setup: %v", err)
	}
	logs := &syncBuffer{}
	b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs}))
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatalf("backend initialize: %v", err)
	}
	e.b = b
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	return e, logs
}

// connectThroughFosite runs authorize/<name>, plays the browser at fosite's
// authorization endpoint (which approves at once) without following its
// redirect, and brings the redirect's query to the plugin's callback.
func connectThroughFosite(t *testing.T, e *env, name string) {
	t.Helper()
	authURL, _ := e.authorize(name)
	browser := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatalf("fosite's authorization endpoint: %v", err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("fosite's authorization endpoint = HTTP %d, Location %v; want 303 to the callback", resp.StatusCode, err)
	}
	if got := back.Scheme + "://" + back.Host + back.Path; got != testRedirect || back.Query().Get("code") == "" {
		t.Fatalf("fosite redirected to %s (error %q), want %s with a code", got, back.Query().Get("error"), testRedirect)
	}
	if status, page := e.callback(back.Query()); status != http.StatusOK || !strings.Contains(page, name+" connected") {
		t.Fatalf("callback = %d %q, want 200 and %s connected", status, page, name)
	}
}

// servedToken is what the readers were told of one access token.
type servedToken struct {
	seq       int       // order first served: messages name tokens by it, never by value
	expiresAt time.Time // the latest expires_at_seconds a read gave it
	dead      bool      // the prober found it inactive
}

// ledger is what the readers and the prober saw.
type ledger struct {
	mu                           sync.Mutex
	start                        time.Time
	tokens                       map[string]*servedToken
	reads, agentReads            int
	readErrors                   []string
	servedInactive, revokedEarly []string
	agentLate                    int
	agentLateFirst               string
	// slowest read, reads over 100 ms (those that waited for a renewal),
	// and served tokens checked only after their expires_at (a stall).
	slowest                time.Duration
	slowReads, checkedLate int
}

func (l *ledger) since(at time.Time) string { return fmt.Sprintf("+%.3fs", at.Sub(l.start).Seconds()) }

// served records a read that returned tok with expiresAt after took, and
// whether fosite took tok as active when asked right after (its answer back
// at checked). An inactive answer counts if it came back before expiresAt
// less probeMargin (as in probe); a later one means this goroutine stalled.
func (l *ledger) served(tok string, expiresAt time.Time, agent bool, took time.Duration, active bool, checked time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if agent {
		l.agentReads++
	}
	l.slowest = max(l.slowest, took)
	if took > 100*time.Millisecond {
		l.slowReads++
	}
	s := l.tokens[tok]
	if s == nil {
		s = &servedToken{seq: len(l.tokens) + 1}
		l.tokens[tok] = s
	}
	s.expiresAt = later(s.expiresAt, expiresAt)
	switch {
	case active:
	case checked.Before(expiresAt.Add(-probeMargin)):
		l.servedInactive = append(l.servedInactive, fmt.Sprintf("token #%d with expires_at %s was inactive right after the read, at %s",
			s.seq, l.since(expiresAt), l.since(checked)))
	default:
		l.checkedLate++
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// failed records a read that failed, or (read false) a response that
// contradicts itself.
func (l *ledger) failed(err error, read bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if read {
		l.reads++
	}
	l.readErrors = append(l.readErrors, err.Error())
}

// runReaders reads creds/<name> with continuous and Agent-like readers for
// fositeRun while the prober watches every token served, then lets the
// prober finish, and returns what they saw.
func runReaders(e *env, op *fositeop.OP, name string) *ledger {
	l := &ledger{start: time.Now(), tokens: map[string]*servedToken{}}
	ctx, cancel := context.WithTimeout(context.Background(), fositeRun)
	defer cancel()

	read := func(agent bool) (ttl int64, ok bool) {
		before := time.Now()
		resp, err := e.creds(name, nil)
		if err != nil {
			l.failed(err, true)
			return 0, false
		}
		tok, _ := resp.Data["access_token"].(string)
		expSec, ok1 := resp.Data["expires_at_seconds"].(int64)
		ttl, ok2 := resp.Data["ttl"].(int64)
		if tok == "" || !ok1 || !ok2 {
			l.failed(fmt.Errorf("creds/%s: want access_token, expires_at_seconds and ttl; got fields %v", name, sortedKeys(resp.Data)), true)
			return 0, false
		}
		expiresAt := time.Unix(expSec, 0)
		if s, _ := resp.Data["expires_at"].(string); s != expiresAt.UTC().Format(time.RFC3339) {
			l.failed(fmt.Errorf("expires_at %q and expires_at_seconds %d disagree", s, expSec), false)
		}
		took := time.Since(before)
		active := op.Active(tok)
		l.served(tok, expiresAt, agent, took, active, time.Now())
		if agent {
			// Agent reads again at ttl + 1 s. The read's expires_at_seconds
			// truncates the planned renewal, so the renewal is before
			// expires_at_seconds + 1 s; a re-read planned later than that
			// would hold the token past its renewal.
			if reRead := before.Add(time.Duration(ttl+1) * time.Second); !reRead.Before(expiresAt.Add(time.Second)) {
				l.mu.Lock()
				if l.agentLate++; l.agentLateFirst == "" {
					l.agentLateFirst = fmt.Sprintf("read at %s: ttl %d, expires_at %s", l.since(before), ttl, l.since(expiresAt))
				}
				l.mu.Unlock()
			}
		}
		return ttl, true
	}

	var readers sync.WaitGroup
	for range continuousReaders {
		readers.Go(func() {
			for ctx.Err() == nil {
				read(false)
				sleepCtx(ctx, time.Duration(20+rand.IntN(31))*time.Millisecond)
			}
		})
	}
	for i := range agentReaders {
		readers.Go(func() {
			sleepCtx(ctx, time.Duration(i)*700*time.Millisecond) // not in step with each other
			for ctx.Err() == nil {
				ttl, ok := read(true)
				if !ok {
					ttl = 0
				}
				sleepCtx(ctx, time.Duration(ttl+1)*time.Second)
			}
		})
	}

	proberDone := make(chan struct{})
	readersDone := make(chan struct{})
	go func() {
		defer close(proberDone)
		probe(l, op, readersDone)
	}()
	readers.Wait()
	close(readersDone)
	<-proberDone
	return l
}

// probe asks fosite every probeEvery whether each token served and not yet
// past its expires_at (less probeMargin) is active. A token found inactive
// before then is recorded as revoked early, judged by the time the answer
// came back: fosite decided no later than that. It returns once the readers
// are done and every token is dead or past its expires_at, or fositeLifespan
// after the readers stop.
func probe(l *ledger, op *fositeop.OP, readersDone <-chan struct{}) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var hardStop <-chan time.Time
	for {
		select {
		case <-readersDone:
			readersDone, hardStop = nil, time.After(fositeLifespan+time.Second)
			continue
		case <-hardStop:
			return
		case <-tick.C:
		}
		type watched struct {
			tok string
			s   *servedToken
			by  time.Time
		}
		var due []watched
		l.mu.Lock()
		for tok, s := range l.tokens {
			if by := s.expiresAt.Add(-probeMargin); !s.dead && time.Now().Before(by) {
				due = append(due, watched{tok, s, by})
			}
		}
		l.mu.Unlock()
		if len(due) == 0 && readersDone == nil {
			return
		}
		for _, w := range due {
			if op.Active(w.tok) {
				continue
			}
			at := time.Now()
			l.mu.Lock()
			w.s.dead = true
			if by := w.s.expiresAt.Add(-probeMargin); at.Before(by) {
				l.revokedEarly = append(l.revokedEarly, fmt.Sprintf("token #%d (expires_at %s) was inactive at %s, %s before its expires_at",
					w.s.seq, l.since(w.s.expiresAt), l.since(at), w.s.expiresAt.Sub(at).Round(time.Millisecond)))
			}
			l.mu.Unlock()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
