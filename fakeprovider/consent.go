package fakeprovider

// The consent page (Options.ConsentPage): what a person sees at the
// authorization endpoint in a browser, for trying the user flows by hand.
//
//	GET  /oauth2/authorize?...   the request is checked as Respond checks it; a
//	                             refused one is a 400 and no page. Else an HTML
//	                             page showing the client, the scopes and
//	                             redirect_uri, an email field for the account
//	                             (the login_hint's or the SetAccount account's
//	                             to start with; the known accounts offered) and
//	                             Approve / Deny buttons. The request's
//	                             parameters travel in hidden fields.
//	POST /oauth2/authorize       the page's form: the hidden parameters are
//	                             checked again (the browser could have changed
//	                             them), then the answer goes back as without the
//	                             page, a 303 to redirect_uri with code and state
//	                             (or error=access_denied), or for form_post the
//	                             page that POSTs them.
//
// An email no account has registers a new account (sub fake-user-<n>) without
// changing the SetAccount one. There is no CSRF token (it is a fake); every
// value on the page is escaped by html/template.

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The consent form's own fields; a request using these names is refused,
// so they never mix with the request's parameters.
const (
	consentDecision = "consent_decision"
	consentAccount  = "consent_account"
	consentPrefix   = "consent_"
)

// Values of consentDecision.
const (
	consentApprove = "approve"
	consentDeny    = "deny"
)

// handleConsent serves the authorization endpoint with the consent page on.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.consentPage(w, r)
	case http.MethodPost:
		s.consentDecide(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "fakeprovider: GET the authorization request, or POST the consent form", http.StatusMethodNotAllowed)
	}
}

// consentRequest checks params, an authorization request's parameters.
func (s *Server) consentRequest(params url.Values) error {
	for k := range params {
		if strings.HasPrefix(k, consentPrefix) {
			return fmt.Errorf("parameter %q: names starting %q belong to the consent form", k, consentPrefix)
		}
	}
	return s.checkAuthorization(params)
}

type consentHidden struct{ Name, Value string }

type consentView struct {
	Client, RedirectURI, Account, Action string
	Scopes, Accounts                     []string
	Hidden                               []consentHidden
}

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := s.consentRequest(q); err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusBadRequest)
		return
	}
	view := consentView{Client: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"), Action: PathAuthorize,
		Scopes: strings.Fields(q.Get("scope"))}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range q[k] {
			view.Hidden = append(view.Hidden, consentHidden{k, v})
		}
	}
	sub := s.approvingAccount(q.Get("login_hint"))
	s.mu.Lock()
	view.Account = s.accounts[sub].email
	for _, a := range s.accounts {
		view.Accounts = append(view.Accounts, a.email)
	}
	s.mu.Unlock()
	slices.Sort(view.Accounts)
	var page bytes.Buffer
	if err := consentTemplate.Execute(&page, view); err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusInternalServerError)
		return
	}
	consentHeaders(w)
	_, _ = w.Write(page.Bytes())
}

func (s *Server) consentDecide(w http.ResponseWriter, r *http.Request) {
	if mediaType(r) != contentTypeForm {
		http.Error(w, "fakeprovider: POST the consent form ("+contentTypeForm+")", http.StatusUnsupportedMediaType)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusBadRequest)
		return
	}
	form := r.PostForm
	decision, entered := form.Get(consentDecision), strings.TrimSpace(form.Get(consentAccount))
	params := url.Values{}
	for k, v := range form {
		if !strings.HasPrefix(k, consentPrefix) {
			params[k] = v
		}
	}
	if err := s.checkAuthorization(params); err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusBadRequest)
		return
	}
	var account string
	switch decision {
	case consentApprove:
		var err error
		if account, err = s.consentAccountFor(entered, params.Get("login_hint")); err != nil {
			http.Error(w, "fakeprovider: "+err.Error(), http.StatusBadRequest)
			return
		}
	case consentDeny:
	default:
		http.Error(w, fmt.Sprintf("fakeprovider: %s must be %s or %s", consentDecision, consentApprove, consentDeny), http.StatusBadRequest)
		return
	}
	s.logf("fakeprovider: consent page: %s for client %q", decision, params.Get("client_id"))
	denial := ""
	if decision == consentDeny {
		denial = "The user clicked Deny on the consent page"
	}
	writeAuthorizationAnswer(w, r, s.answerAuthorization(params, account, denial), http.StatusSeeOther)
}

// consentAccountFor is the sub of the account a person entered on the
// consent page: a known sub or email; an unknown email registers a new
// account; nothing entered is the login_hint's or SetAccount's.
func (s *Server) consentAccountFor(entered, loginHint string) (string, error) {
	if entered == "" {
		return s.approvingAccount(loginHint), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub, a := range s.accounts {
		if entered == sub || strings.EqualFold(entered, a.email) {
			return sub, nil
		}
	}
	if len(entered) > 254 || strings.ContainsAny(entered, " \t\r\n<>\"") || strings.Count(entered, "@") != 1 ||
		strings.HasPrefix(entered, "@") || strings.HasSuffix(entered, "@") {
		return "", fmt.Errorf("%q is not an email address", entered)
	}
	sub := fmt.Sprintf("fake-user-%d", len(s.accounts)+1)
	for s.accounts[sub] != nil {
		sub += "x"
	}
	current := s.account
	s.setAccountLocked(sub, entered)
	s.account = current // registered, not made the default approver
	return sub, nil
}

func consentHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

// consentTemplate is the consent page; html/template escapes every value
// (and the action and hidden values as URL and attribute text).
var consentTemplate = template.Must(template.New("consent").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {{.Client}} - fakeprovider</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto;">
<h1>Authorize <span id="client">{{.Client}}</span></h1>
<p>The application <strong>{{.Client}}</strong> asks to use your account at this fake provider{{if .Scopes}} with these scopes:{{else}}, with no scopes named.{{end}}</p>
{{if .Scopes}}<ul id="scopes">
{{range .Scopes}}<li>{{.}}</li>
{{end}}</ul>
{{end}}<p>Your answer goes back to <code id="redirect_uri">{{.RedirectURI}}</code>.</p>
<form method="post" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}"/>
{{end}}<p><label for="account">Sign in as (email)</label>
<input id="account" name="consent_account" type="email" value="{{.Account}}" list="accounts" required>
<datalist id="accounts">{{range .Accounts}}<option value="{{.}}">{{end}}</datalist></p>
<p><button type="submit" name="consent_decision" value="approve">Approve</button>
<button type="submit" name="consent_decision" value="deny" formnovalidate>Deny</button></p>
</form>
</body></html>
`))
