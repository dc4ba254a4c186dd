package fakeprovider

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// consentTestParams is an authorization request of testClientID whose state
// and scope need escaping in HTML.
func consentTestParams(mode string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {testClientID}, "redirect_uri": {"https://vault.example/v1/tb/callback"},
		"scope": {`openid email <b>x</b>`}, "state": {`st"><script>alert(1)</script>`},
		"code_challenge": {challenge(consentVerifier)}, "code_challenge_method": {"S256"}}
	if mode != "" {
		q.Set("response_mode", mode)
	}
	return q
}

const consentVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

var (
	consentAccountInput = regexp.MustCompile(`<input id="account" name="consent_account" type="email" value="([^"]*)"`)
	consentFormAction   = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
)

// hiddenFields are the hidden inputs of page, unescaped.
func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, in := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return v
}

// consentStart runs a server with the consent page on and a client that
// does not follow redirects.
func consentStart(t *testing.T) (*Server, *http.Client) {
	t.Helper()
	s, hc := start(t, Options{ConsentPage: true})
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return s, hc
}

func TestConsentPageShowsTheRequest(t *testing.T) {
	cases := []struct {
		name   string
		change func(q url.Values)
		status int
		// refusal: a 400 whose body holds it, with no page and no code.
		refusal     string
		wantAccount string
	}{
		{"a request: the page", nil, http.StatusOK, "", DefaultAccountEmail},
		{"a login_hint picks the account shown", func(q url.Values) { q.Set("login_hint", "second@example.test") }, http.StatusOK, "", "second@example.test"},
		{"an unknown client: refused", func(q url.Values) { q.Set("client_id", "nobody") }, http.StatusBadRequest, `unknown client_id`, ""},
		{"a plain-http redirect off loopback: refused", func(q url.Values) { q.Set("redirect_uri", "http://vault.example/cb") }, http.StatusBadRequest, "not an https", ""},
		{"a consent_ parameter: refused", func(q url.Values) { q.Set("consent_decision", "approve") }, http.StatusBadRequest, "belong to the consent form", ""},
		{"response_mode=fragment: refused", func(q url.Values) { q.Set("response_mode", "fragment") }, http.StatusBadRequest, "unsupported response_mode", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hc := consentStart(t)
			s.SetAccount("fake-user-2", "second@example.test")
			s.SetAccount(DefaultAccountSubject, DefaultAccountEmail)
			q := consentTestParams("")
			if c.change != nil {
				c.change(q)
			}
			resp, err := hc.Get(s.URL() + PathAuthorize + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if got, want := resp.StatusCode, c.status; got != want {
				t.Fatalf("GET authorize: got %d %s, want %d", got, body, want)
			}
			if got := resp.Header.Get("Location"); got != "" {
				t.Fatalf("Location: got %q, want none (the person decides first)", got)
			}
			if got := codes(s); got != 0 {
				t.Fatalf("codes issued: got %d, want 0 before a decision", got)
			}
			if c.refusal != "" {
				if !strings.Contains(body, c.refusal) || strings.Contains(body, "<form") {
					t.Fatalf("refusal: got %q, want %q and no form", body, c.refusal)
				}
				return
			}
			for header, want := range map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
				if got := resp.Header.Get(header); got != want {
					t.Errorf("%s: got %q, want %q", header, got, want)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "<b>") {
				t.Fatalf("page: got unescaped input in %s", body)
			}
			for _, want := range []string{`<span id="client">` + testClientID + `</span>`, "<li>openid</li>", "<li>email</li>", "<li>&lt;b&gt;x&lt;/b&gt;</li>",
				`<code id="redirect_uri">https://vault.example/v1/tb/callback</code>`, `value="approve">Approve</button>`, `value="deny" formnovalidate>Deny</button>`,
				`<option value="second@example.test">`, `<option value="` + DefaultAccountEmail + `">`} {
				if !strings.Contains(body, want) {
					t.Errorf("page: got %s, want it to hold %s", body, want)
				}
			}
			if got := consentFormAction.FindStringSubmatch(body); got == nil || got[1] != PathAuthorize {
				t.Errorf("form action: got %v, want %s", got, PathAuthorize)
			}
			if got := consentAccountInput.FindStringSubmatch(body); got == nil || got[1] != c.wantAccount {
				t.Errorf("account field: got %v, want %q", got, c.wantAccount)
			}
			if got, want := hiddenFields(body).Encode(), q.Encode(); got != want {
				t.Errorf("hidden fields: got %s, want the request's parameters %s", got, want)
			}
		})
	}
}

func TestConsentPageDecision(t *testing.T) {
	cases := []struct {
		name, mode string
		change     func(form url.Values)
		status     int
		refusal    string
		// for an answer: a code for wantEmail's account, or access_denied
		denied    bool
		wantEmail string
	}{
		{"approve: a 303 with a code for the account entered", "", nil, http.StatusSeeOther, "", false, "second@example.test"},
		{"approve, answered by form_post", "form_post", nil, http.StatusOK, "", false, "second@example.test"},
		{"approve with no account entered: the SetAccount one", "", func(f url.Values) { f.Del(consentAccount) }, http.StatusSeeOther, "", false, DefaultAccountEmail},
		{"approve a new email: a new account", "", func(f url.Values) { f.Set(consentAccount, "new.person@example.test") }, http.StatusSeeOther, "", false, "new.person@example.test"},
		{"deny: access_denied", "", func(f url.Values) { f.Set(consentDecision, consentDeny) }, http.StatusSeeOther, "", true, ""},
		{"deny, answered by form_post", "form_post", func(f url.Values) { f.Set(consentDecision, consentDeny) }, http.StatusOK, "", true, ""},
		{"a changed redirect_uri: checked again", "", func(f url.Values) { f.Set("redirect_uri", "http://evil.example/cb") }, http.StatusBadRequest, "not an https", false, ""},
		{"a changed client: checked again", "", func(f url.Values) { f.Set("client_id", "nobody") }, http.StatusBadRequest, "unknown client_id", false, ""},
		{"no response_type: checked again", "", func(f url.Values) { f.Del("response_type") }, http.StatusBadRequest, "response_type must be code", false, ""},
		{"no decision", "", func(f url.Values) { f.Del(consentDecision) }, http.StatusBadRequest, "must be approve or deny", false, ""},
		{"an account that is no email", "", func(f url.Values) { f.Set(consentAccount, "<script>") }, http.StatusBadRequest, "is not an email address", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hc := consentStart(t)
			s.SetAccount("fake-user-2", "second@example.test")
			s.SetAccount(DefaultAccountSubject, DefaultAccountEmail)
			params := consentTestParams(c.mode)
			form := url.Values{}
			for k, v := range params {
				form[k] = v
			}
			form.Set(consentDecision, consentApprove)
			form.Set(consentAccount, "second@example.test")
			if c.change != nil {
				c.change(form)
			}
			r := send(t, hc, http.MethodPost, s.URL()+PathAuthorize, contentTypeForm, form.Encode())
			body := string(r.body)
			if got, want := r.status, c.status; got != want {
				t.Fatalf("POST consent: got %d %s, want %d", got, body, want)
			}
			if c.refusal != "" {
				if !strings.Contains(body, c.refusal) || r.header.Get("Location") != "" || codes(s) != 0 {
					t.Fatalf("refusal: got %q, Location %q, %d codes; want %q, no redirect, no code", body, r.header.Get("Location"), codes(s), c.refusal)
				}
				// A refusal repeats input only as plain text a browser does not sniff.
				if ct, sniff := r.header.Get("Content-Type"), r.header.Get("X-Content-Type-Options"); ct != "text/plain; charset=utf-8" || sniff != "nosniff" {
					t.Fatalf("refusal: got Content-Type %q, X-Content-Type-Options %q; want text/plain, nosniff", ct, sniff)
				}
				return
			}
			var got url.Values
			if c.mode == "form_post" {
				if action := formAction.FindStringSubmatch(body); action == nil || html.UnescapeString(action[1]) != params.Get("redirect_uri") {
					t.Fatalf("form_post action: got %v, want the redirect_uri (body %s)", action, body)
				}
				got = hiddenFields(body)
			} else {
				back, err := url.Parse(r.header.Get("Location"))
				if err != nil || back.Host != "vault.example" || back.Path != "/v1/tb/callback" {
					t.Fatalf("Location: got %q, want the redirect_uri", r.header.Get("Location"))
				}
				got = back.Query()
			}
			if got.Get("state") != params.Get("state") {
				t.Fatalf("answer state: got %q, want %q", got.Get("state"), params.Get("state"))
			}
			if c.denied {
				if got.Get("error") != "access_denied" || !strings.Contains(got.Get("error_description"), "Deny") || got.Has("code") || codes(s) != 0 {
					t.Fatalf("answer: got %v (%d codes), want error=access_denied (Deny) and no code", got, codes(s))
				}
				return
			}
			tok := postForm(t, hc, s.URL()+PathOAuth2Token, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
				"redirect_uri": {params.Get("redirect_uri")}, "code_verifier": {consentVerifier}}, withBasic(testClientID, testClientSecret))
			wantStatus(t, tok, http.StatusOK)
			if gotEmail, want := userinfo(t, hc, s, tok.str(t, "access_token")).str(t, "email"), c.wantEmail; gotEmail != want {
				t.Fatalf("userinfo email: got %q, want %q", gotEmail, want)
			}
			// The account entered is not made the default approver.
			if got, want := s.approvingAccount(""), DefaultAccountSubject; got != want {
				t.Fatalf("default approver after the page: got %q, want %q", got, want)
			}
		})
	}
}

func TestConsentPageSwitch(t *testing.T) {
	cases := []struct {
		name         string
		consent      bool
		method       string
		wantStatus   int
		wantRedirect bool
	}{
		{"off: GET approves at once, as before", false, http.MethodGet, http.StatusFound, true},
		{"on: GET is the page", true, http.MethodGet, http.StatusOK, false},
		{"on: PUT is refused", true, http.MethodPut, http.StatusMethodNotAllowed, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hc := start(t, Options{ConsentPage: c.consent})
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			r := send(t, hc, c.method, authorizeURL(s, consentVerifier), "", "")
			if got, want := r.status, c.wantStatus; got != want {
				t.Fatalf("%s authorize: got %d %s, want %d", c.method, got, r.body, want)
			}
			if got := r.header.Get("Location") != ""; got != c.wantRedirect {
				t.Fatalf("redirect: got %v (%q), want %v", got, r.header.Get("Location"), c.wantRedirect)
			}
		})
	}
	// Respond and Authorize play the approving user whatever the switch.
	s, _ := start(t, Options{ConsentPage: true})
	if back, err := s.Authorize(authorizeURL(s, consentVerifier)); err != nil || !strings.Contains(back, "code=") {
		t.Fatalf("Authorize with the page on: got %q, %v; want a redirect with a code", back, err)
	}
}
