package provider

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// echoServer is a token endpoint that refuses every request and quotes part
// of it back in error_description, as some providers do: a window of 40
// bytes either side of the first credential in the Authorization header, the
// URL's query or the body. The window keeps the credential inside the part
// of the description an error shows.
type echoServer struct {
	part        string   // "header", "query" or "body"
	credentials []string // what to look for, in the forms echoForms gives; nil: the client assertion received
	mu          sync.Mutex
	echoed      string // the last description sent
	assertion   string // the last client_assertion received
}

func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	part := map[string]string{"header": r.Header.Get("Authorization"), "query": r.URL.RawQuery, "body": string(body)}[s.part]
	echo, credentials := "nothing of interest", s.credentials
	if credentials == nil {
		credentials = []string{assertionOf(r, body)}
	}
	for _, c := range credentials {
		if c == "" {
			continue
		}
		if i := strings.Index(part, c); i >= 0 {
			echo = part[max(0, i-40):min(len(part), i+len(c)+40)]
			break
		}
	}
	s.mu.Lock()
	s.echoed, s.assertion = echo, assertionOf(r, body)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": "you sent: " + echo})
}

// assertionOf is the client_assertion r carried, in any encoding.
func assertionOf(r *http.Request, body []byte) string {
	if a := r.URL.Query().Get("client_assertion"); a != "" {
		return a
	}
	if form, err := url.ParseQuery(string(body)); err == nil && form.Get("client_assertion") != "" {
		return form.Get("client_assertion")
	}
	var obj map[string]any
	_ = json.Unmarshal(body, &obj)
	a, _ := obj["client_assertion"].(string)
	return a
}

var jwsPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// TestEchoedRequestLeaksNoCredential: through the real client, for each
// client authentication and encoding, a provider that quotes back any part
// of a refresh request (the Authorization header, the query, the body)
// around any credential gets no credential into the error: not the client
// secret (raw, escaped, or inside HTTP Basic's base64), not the refresh
// token, not the signed client assertion. Each credential the request
// carries is quoted from some part, and shown redacted.
func TestEchoedRequestLeaksNoCredential(t *testing.T) {
	const id, secret, refresh = "client 7:é", `se"cr\et p%a+s&s=<w>/d`, `rt/+="\ <x>&ü`
	forms := map[string]string{}
	kinds := map[string][]string{"client assertion": nil}
	for name, f := range echoForms(id, secret) {
		forms["client secret "+name] = f
		kinds["client secret"] = append(kinds["client secret"], f)
	}
	for name, f := range echoForms("", refresh) {
		forms["refresh token "+name] = f
		kinds["refresh token"] = append(kinds["refresh token"], f)
	}
	for _, style := range []AuthStyle{AuthBasic, AuthBody, AuthPrivateKeyJWT} {
		for _, enc := range []Encoding{EncodeForm, EncodeJSON, EncodeQuery} {
			t.Run(string(style)+"/"+string(enc), func(t *testing.T) {
				quoted := map[string]bool{}
				for _, part := range []string{"header", "query", "body"} {
					for kind, credentials := range kinds {
						s := &echoServer{part: part, credentials: credentials}
						srv := httptest.NewServer(s)
						defer srv.Close()
						e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL + "/token", ClientID: id, ClientSecret: secret,
							AuthStyle: style, Encoding: enc, Now: sigClock}
						if style == AuthPrivateKeyJWT {
							e.ClientSecret, e.Key = "", &SigningKey{Signer: sigRSA, KeyID: "k1"}
						}
						_, err := exchange(t, e, GrantRefreshToken, refresh)
						if err == nil {
							t.Fatalf("%s echo: the refusal was taken for a token", part)
						}
						out := err.Error()
						if got := leaked(out, forms); len(got) > 0 {
							t.Errorf("%s echo %q: error %q holds %v", part, s.echoed, out, got)
						}
						if s.assertion != "" {
							signature := s.assertion[strings.LastIndex(s.assertion, ".")+1:]
							if strings.Contains(out, signature) || jwsPattern.MatchString(out) {
								t.Errorf("%s echo %q: error %q holds the client assertion", part, s.echoed, out)
							}
						}
						if s.echoed != "nothing of interest" {
							quoted[kind] = true
							if !strings.Contains(out, redacted) {
								t.Errorf("%s echo %q: error %q, want the %s shown redacted", part, s.echoed, out, kind)
							}
						}
					}
				}
				want := map[string]bool{"refresh token": true, "client secret": style != AuthPrivateKeyJWT, "client assertion": style == AuthPrivateKeyJWT}
				for kind, sent := range want {
					if sent && !quoted[kind] {
						t.Errorf("no part of the request carried the %s for the server to quote", kind)
					}
				}
			})
		}
	}
}
