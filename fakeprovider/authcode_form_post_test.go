package fakeprovider

// The authorization endpoint's response modes: query (a 302 whose query
// carries the answer) and form_post (OAuth 2.0 Form Post Response Mode: a
// page whose form POSTs the answer to redirect_uri on load). Any other mode
// is refused before a code is issued.

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// formPostTestURL is an authorization request of testClientID with mode
// ("" for none) and a state that needs escaping in HTML.
func formPostTestURL(s *Server, mode string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {testClientID}, "redirect_uri": {"https://vault.example/v1/tb/callback?x=1"},
		"state": {`st"><script>alert(1)</script>`}}
	if mode != "" {
		q.Set("response_mode", mode)
	}
	return s.URL() + PathAuthorize + "?" + q.Encode()
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"/>`)
)

// codes is how many codes s has issued.
func codes(s *Server) int {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	return len(s.user.codes)
}

func TestFormPostAuthorizeEndpoint(t *testing.T) {
	const state = `st"><script>alert(1)</script>`
	cases := []struct {
		name, mode string
		status     int
		// formPost: the answer is a page with a form; else a redirect (or, on
		// a refusal, neither).
		formPost bool
		refusal  string
	}{
		{"no response_mode: a redirect", "", http.StatusFound, false, ""},
		{"query: a redirect", "query", http.StatusFound, false, ""},
		{"form_post: a page that posts", "form_post", http.StatusOK, true, ""},
		{"fragment: refused", "fragment", http.StatusBadRequest, false, `unsupported response_mode "fragment"`},
		{"an unknown mode: refused", "web_message", http.StatusBadRequest, false, `unsupported response_mode "web_message"`},
		{"an empty mode: refused", "=", http.StatusBadRequest, false, `unsupported response_mode ""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hc := start(t, Options{})
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			authURL := formPostTestURL(s, c.mode)
			if c.mode == "=" { // response_mode present and empty
				authURL = formPostTestURL(s, "") + "&response_mode="
			}
			resp, err := hc.Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("GET authorize = %d %s, want %d", resp.StatusCode, body, c.status)
			}
			var got url.Values
			switch {
			case c.refusal != "":
				if !strings.Contains(string(body), c.refusal) || resp.Header.Get("Location") != "" || codes(s) != 0 {
					t.Fatalf("refusal = %q, Location %q, %d codes issued; want %q, no redirect, no code",
						body, resp.Header.Get("Location"), codes(s), c.refusal)
				}
				return
			case c.formPost:
				if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); !strings.HasPrefix(ct, "text/html") || cc != "no-store" ||
					resp.Header.Get("Location") != "" || !strings.Contains(string(body), `onload="javascript:document.forms[0].submit()"`) {
					t.Fatalf("form_post answer: Content-Type %q, Cache-Control %q, Location %q, body %s; want an auto-submitting HTML page, no-store, no redirect",
						ct, cc, resp.Header.Get("Location"), body)
				}
				action := formAction.FindStringSubmatch(string(body))
				if action == nil || html.UnescapeString(action[1]) != "https://vault.example/v1/tb/callback?x=1" {
					t.Fatalf("form action = %v, want the redirect_uri (body %s)", action, body)
				}
				got = url.Values{}
				for _, in := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
					got.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
				}
				if strings.Contains(string(body), "<script>") {
					t.Fatalf("the page holds the state unescaped: %s", body)
				}
			default:
				back, err := url.Parse(resp.Header.Get("Location"))
				if err != nil || back.Host != "vault.example" || back.Query().Get("x") != "1" {
					t.Fatalf("Location = %q, want the redirect_uri with its query kept", resp.Header.Get("Location"))
				}
				got = back.Query()
				got.Del("x")
			}
			if got.Get("state") != state || !strings.HasPrefix(got.Get("code"), "code_") || len(got) != 2 {
				t.Fatalf("answer = %v, want exactly code and the state %q", got, state)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {"https://vault.example/v1/tb/callback?x=1"}}
			wantStatus(t, postForm(t, hc, s.URL()+PathOAuth2Token, form, withBasic(testClientID, testClientSecret)), 200)
		})
	}
}

func TestFormPostRespondAndAuthorize(t *testing.T) {
	s, _ := start(t, Options{})
	answer, err := s.Respond(formPostTestURL(s, "form_post"))
	if err != nil || !answer.FormPost || answer.RedirectURI != "https://vault.example/v1/tb/callback?x=1" || answer.Params.Get("code") == "" {
		t.Fatalf("Respond(form_post) = %+v, %v; want a form POST of a code to the redirect_uri", answer, err)
	}
	if _, err := s.Authorize(formPostTestURL(s, "form_post")); err == nil || !strings.Contains(err.Error(), "form POST") {
		t.Fatalf("Authorize(form_post) err = %v, want it refused: the answer travels in no URL", err)
	}
	if got := codes(s); got != 1 {
		t.Fatalf("codes issued = %d, want 1 (Authorize refused before issuing one)", got)
	}

	s.SetDenyAuthorizations(true)
	denied, err := s.Respond(formPostTestURL(s, "form_post"))
	if err != nil || !denied.FormPost || denied.Params.Get("error") != "access_denied" || denied.Params.Has("code") {
		t.Fatalf("denied Respond(form_post) = %+v, %v; want error=access_denied posted, no code", denied, err)
	}
}

func TestFormPostDiscoveryListsResponseModes(t *testing.T) {
	s, hc := start(t, Options{})
	modes := func() any {
		resp, err := hc.Get(s.URL() + PathDiscovery)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, body: body}.json(t)["response_modes_supported"]
	}
	if got := modes(); got != nil {
		t.Fatalf("response_modes_supported = %v by default, want it left out", got)
	}
	s.SetResponseModesSupported("query", "form_post")
	if got, ok := modes().([]any); !ok || len(got) != 2 || got[0] != "query" || got[1] != "form_post" {
		t.Fatalf("response_modes_supported = %v, want [query form_post]", got)
	}
}
