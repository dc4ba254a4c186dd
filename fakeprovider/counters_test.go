package fakeprovider

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
)

func TestCountersAndReset(t *testing.T) {
	s, c := start(t, Options{})
	at := mint(t, c, s, OAuth2).str(t, "access_token")
	postForm(t, c, s.URL()+PathOAuth2Token, ccForm(testClientID, "nope"))
	mint(t, c, s, Echo360)
	mint(t, c, s, APIVideo)
	send(t, c, http.MethodGet, s.URL()+"/nowhere", "", "")
	whoami(t, c, s, at)

	for path, want := range map[string]int{PathOAuth2Token: 2, PathEcho360Token: 1, PathAPIVideoAuth: 1, "/nowhere": 1, PathWhoami: 1} {
		if got := s.Calls(path); got != want {
			t.Errorf("Calls(%s): got %d, want %d", path, got, want)
		}
	}
	if got := s.TotalCalls(); got != 4 {
		t.Errorf("TotalCalls: got %d, want 4 (token endpoints only)", got)
	}
	wantCounts(t, s, counts{ClientCredentials: 2, APIKey: 1})
	if got := s.LastRequest(PathOAuth2Token).Params["client_secret"]; got != "nope" {
		t.Errorf("LastRequest client_secret: got %q, want the last request's %q", got, "nope")
	}

	s.Reset()
	wantCounts(t, s, counts{})
	got := fmt.Sprint(s.TotalCalls(), s.Calls(PathOAuth2Token), s.LastRequest(PathOAuth2Token).Method == "")
	if want := "0 0 true"; got != want {
		t.Errorf("TotalCalls, Calls, LastRequest is zero after Reset: got %s, want %s", got, want)
	}
	// Reset keeps clients and tokens.
	if !s.Valid(at) {
		t.Errorf("Valid after Reset: got false, want true")
	}
	wantStatus(t, mint(t, c, s, OAuth2), http.StatusOK)
	if got := s.TotalCalls(); got != 1 {
		t.Errorf("TotalCalls after Reset and one call: got %d, want 1", got)
	}
}

// TestConcurrentRefresh sends one refresh token from many goroutines: exactly
// one use may succeed, every other one is a counted reuse.
func TestConcurrentRefresh(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathEcho360Token
	rt := s.SeedRefreshToken(Echo360, testClientID)
	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := c.PostForm(u, url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}})
			if err != nil {
				t.Errorf("refresh: got %v, want a response", err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
			_ = s.TotalCalls() // counters are read concurrently with handlers
		})
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for st := range statuses {
		if st == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("successful refreshes: got %d, want 1", ok)
	}
	wantCounts(t, s, counts{RefreshToken: 1, Reuses: n - 1})
}

func TestLastRequest(t *testing.T) {
	s, c := start(t, Options{})
	if got := s.LastRequest(PathEndorsedToken).Method; got != "" {
		t.Errorf("LastRequest before any request: got Method %q, want the zero value", got)
	}
	body := ccJSON(testClientID, testClientSecret)
	body["scope"] = []string{"all:read"}
	postJSON(t, c, s.URL()+PathEndorsedToken+"?trace=1", body, withHeader("Accept", "application/json"))

	type recorded struct {
		Method, Path, ContentType, Accept, QueryTrace, ParamTrace, ClientID, Scope string
		SecretSent, HasAuthorization, BasicAuth                                    bool
		JSONScopeLen                                                               int
	}
	rec := s.LastRequest(PathEndorsedToken)
	list, _ := rec.JSON["scope"].([]any)
	got := recorded{rec.Method, rec.Path, rec.ContentType, rec.Header.Get("Accept"), rec.Query["trace"], rec.Params["trace"],
		rec.ClientID, rec.Params["scope"], rec.SecretSent, rec.HasAuthorization, rec.BasicAuth, len(list)}
	want := recorded{"POST", PathEndorsedToken, contentTypeJSON, "application/json", "1", "1",
		testClientID, `["all:read"]`, true, false, false, 1}
	if got != want {
		t.Errorf("recorded:\ngot  %+v\nwant %+v", got, want)
	}

	t.Run("a rejected request is recorded too", func(t *testing.T) {
		send(t, c, http.MethodPost, s.URL()+PathOAuth2Token, "text/plain", "hello", withHeader("Authorization", "Bearer x"))
		rec := s.LastRequest(PathOAuth2Token)
		got := recorded{ContentType: rec.ContentType, HasAuthorization: rec.HasAuthorization, BasicAuth: rec.BasicAuth, SecretSent: rec.SecretSent}
		want := recorded{ContentType: "text/plain", HasAuthorization: true}
		if got != want {
			t.Errorf("recorded:\ngot  %+v\nwant %+v", got, want)
		}
	})
}

// counts is a snapshot of the server's grant and reuse counters.
type counts struct {
	ClientCredentials, RefreshToken, APIKey, Reuses, GraceReuses int
}

func countsOf(s *Server) counts {
	return counts{
		ClientCredentials: s.Grants("client_credentials"),
		RefreshToken:      s.Grants("refresh_token"),
		APIKey:            s.Grants("api_key"),
		Reuses:            s.RefreshReuses(),
		GraceReuses:       s.RefreshGraceReuses(),
	}
}

func wantCounts(t *testing.T, s *Server, want counts) {
	t.Helper()
	if got := countsOf(s); got != want {
		t.Errorf("counters: got %+v, want %+v", got, want)
	}
}

// minted is the counters after n base grants of d and nothing else.
func minted(d Dialect, n int) counts {
	if d == APIVideo {
		return counts{APIKey: n}
	}
	return counts{ClientCredentials: n}
}
