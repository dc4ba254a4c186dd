package provider

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The credentials of the fuzzed requests: every character some encoding changes.
const (
	fuzzClientID = "client:1 é"
	fuzzSecret   = `s3cr"et\ p%a+s&s=w:o<r>d/é😀`
	fuzzRefresh  = "rt/+=\"\\ <x>&\x01ü"
)

// fuzzForms are the forms of the fuzzed credentials an error must never hold.
var fuzzForms = func() map[string]string {
	all := map[string]string{}
	for name, f := range echoForms(fuzzClientID, fuzzSecret) {
		all["client secret "+name] = f
	}
	for name, f := range echoForms("", fuzzRefresh) {
		all["refresh token "+name] = f
	}
	return all
}()

// fuzzRedactor is the fuzzed requests' Redactor, its forms computed once.
var fuzzRedactor = (&Endpoint{ClientID: fuzzClientID, ClientSecret: fuzzSecret}).Redactor(fuzzRefresh)

// FuzzParseResponse: any provider answer, however hostile (odd types, huge
// numbers, control characters, nested junk, the request's credentials
// echoed in any form), yields a token or an *Error of one class, never a
// panic. A token has an access token, a sane lifetime and only the
// characters RFC 6749 allows in each string; an error, once the request's
// Redactor has cleaned it, holds none of the credentials in any form and no
// control character.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"at","expires_in":"1209600","scope":["a"]}`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_grant","error_description":"x"}`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=a&expires_in=1e9`))
	f.Add(401, "application/problem+json", []byte(`{"type":"a/b","title":"t","status":401}`))
	f.Add(200, "text/html", []byte(`<html>`))
	f.Add(200, "", []byte(`{"is_error":true,"message":7}`))
	// Hostile: huge numbers, wrong types, control characters, nested junk.
	f.Add(200, "application/json", []byte(`{"access_token":"at","expires_in":1e400,"refresh_token_expires_in":-1e400}`))
	f.Add(200, "application/json", []byte(`{"access_token":"at","expires_in":123456789012345678901234567890}`))
	f.Add(200, "application/json", []byte(`{"access_token":["at"],"token_type":{"a":[[[[{}]]]]}}`))
	f.Add(200, "application/json", []byte(`{"access_token":"at\r\nX-Evil: 1","token_type":"Bearer\u001b[2J"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"at","token_type":"<script>","scope":"a\tb \"c\""}`))
	f.Add(200, "application/json", []byte(`{"access_token":"at","refresh_token":"r t","scope":["ok","b\\c",7]}`))
	f.Add(200, "application/x-www-form-urlencoded", []byte("access_token=a%0D%0Ab&token_type=%1B&scope=a%09b"))
	f.Add(200, "application/json", []byte(`{"access_token":"\ud800","ACCESS_TOKEN":"x","access_token":"é"}`))
	f.Add(200, "application/json", []byte(`{"a":`+strings.Repeat("[", 5000)+`}`))
	// The request echoed back, in the forms a provider may use.
	for _, form := range fuzzForms {
		body, _ := json.Marshal(map[string]string{"error": "invalid_client", "error_description": "got " + form})
		f.Add(400, "application/json", body)
		f.Add(400, "application/x-www-form-urlencoded", []byte("error="+url.QueryEscape(form)))
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		tok, err := parseResponse(status, contentType, body)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *Error", err)
			}
			if pe.Class < Temporary || pe.Class > Refused {
				t.Fatalf("error %v has no class (%d)", err, pe.Class)
			}
			out := cleaned(err, fuzzRedactor, 0).Error()
			if got := leaked(out, fuzzForms); len(got) > 0 {
				t.Fatalf("error %q holds %v", out, got)
			}
			if strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("error %q holds a control character", out)
			}
			return
		}
		if tok.AccessToken == "" || tok.ExpiresIn < 0 || tok.ExpiresIn > maxLifetime || tok.TokenType == "" {
			t.Fatalf("unusable token accepted: %+v", tok)
		}
		if bad := badTokenStrings(tok); bad != "" {
			t.Fatalf("token with %s accepted: %+v", bad, tok)
		}
	})
}

// badTokenStrings names the first string of tok that RFC 6749 Appendix A
// does not allow ("" when all are allowed), checked here byte by byte
// rather than by the code under test.
func badTokenStrings(tok *Token) string {
	vschar := func(c byte) bool { return 0x21 <= c && c <= 0x7e } // less the space
	typeChar := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
	}
	nqchar := func(c byte) bool { return vschar(c) && c != '"' && c != '\\' }
	all := func(s string, ok func(byte) bool) bool {
		for i := 0; i < len(s); i++ {
			if !ok(s[i]) {
				return false
			}
		}
		return true
	}
	switch {
	case !all(tok.AccessToken, vschar):
		return "an access_token outside VSCHAR or with a space"
	case !all(tok.RefreshToken, vschar):
		return "a refresh_token outside VSCHAR or with a space"
	case !all(tok.TokenType, typeChar):
		return "a token_type neither a type-name nor a URI"
	}
	for _, s := range tok.Scopes {
		if s == "" || !all(s, nqchar) {
			return "a scope-token outside NQCHAR"
		}
	}
	return ""
}

// FuzzRedact: a credential in any form the provider may echo, whatever
// surrounds it and wherever the cut falls, is removed from the text.
func FuzzRedact(f *testing.F) {
	f.Add("the secret is ", "hunter2", " !", uint8(0), uint16(0))
	f.Add("a\x00", "b", "", uint8(3), uint16(290))
	f.Add("", `p"a\ss w<o>rd`, "x", uint8(7), uint16(295))
	f.Fuzz(func(t *testing.T, before, secret, after string, form uint8, pad uint16) {
		if secret == "" || len(secret) > 256 || !utf8.ValidString(secret) {
			// Credentials are short (a long one only slows the search), and
			// valid UTF-8: Vault's API takes them as JSON strings. (An invalid
			// byte can occur inside another character of the text.)
			return
		}
		forms := echoForms(fuzzClientID, secret)
		names := make([]string, 0, len(forms))
		for name := range forms {
			names = append(names, name)
		}
		slices.Sort(names)
		name := names[int(form)%len(names)]
		text := strings.Repeat(" ", int(pad)%400) + before + forms[name] + after
		out := (&Endpoint{ClientID: fuzzClientID, ClientSecret: secret}).Redactor().Redact(text)
		if got := leaked(out, map[string]string{name: forms[name]}); len(got) > 0 {
			t.Fatalf("Redact(%q) = %q still holds the secret as %s", text, out, name)
		}
	})
}
