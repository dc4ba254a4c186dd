package provider

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// The device authorization grant (RFC 8628): the client asks the device
// authorization endpoint for a user code, the user enters it at the
// verification URI on any device, and the client polls the token endpoint
// with the device code until the user has decided.

// GrantDeviceCode names the grant (RFC 8628 §3.4).
const GrantDeviceCode Grant = "urn:ietf:params:oauth:grant-type:device_code"

// The poll answers that are not a token (RFC 8628 §3.5), as Error.Code.
const (
	DevicePending  = "authorization_pending" // ask again after the interval
	DeviceSlowDown = "slow_down"             // ask again, 5 s more apart from now on
	DeviceDenied   = "access_denied"         // the user said no
	DeviceExpired  = "expired_token"         // the device code expired
)

// DefaultDeviceInterval is the polling interval when the provider names none (§3.2).
const DefaultDeviceInterval = 5 * time.Second

// DeviceAuthorization is the device authorization endpoint's answer (§3.2).
// DeviceCode is a credential: it is never shown or logged.
type DeviceAuthorization struct {
	DeviceCode              string
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string        // "" when the provider sends none
	ExpiresIn               time.Duration // how long the codes live
	Interval                time.Duration // the least time between polls
}

// deviceJSON is §3.2's answer; Google names verification_uri verification_url.
type deviceJSON struct {
	DeviceCode              string  `json:"device_code"`
	UserCode                string  `json:"user_code"`
	VerificationURI         string  `json:"verification_uri"`
	VerificationURL         string  `json:"verification_url"`
	VerificationURIComplete string  `json:"verification_uri_complete"`
	ExpiresIn               seconds `json:"expires_in"`
	Interval                seconds `json:"interval"`
}

// StartDevice asks the device authorization endpoint for a user code (§3.1):
// the authorization scopes, the audience when set, and the client's
// authentication as at the token endpoint.
func (c *Client) StartDevice(ctx context.Context, e *Endpoint) (*DeviceAuthorization, error) {
	r := e.Redactor()
	if e.DeviceURL == "" {
		return nil, &Error{Class: Refused, Description: "no device authorization endpoint"}
	}
	var params []param
	if scopes := e.AuthorizationScopes(); len(scopes) > 0 {
		params = append(params, param{"scope", scopes})
	}
	if e.Audience != "" {
		params = append(params, param{"audience", e.Audience})
	}
	req, err := e.assemble(ctx, codeGrant, e.DeviceURL, params)
	if err != nil {
		return nil, r.refusal(err)
	}
	return answer(c, req, r, parseDevice)
}

// parseDevice reads §3.2's answer (JSON, or a form as GitHub sends by default),
// or the provider's error in any shape the token endpoint's may take.
func parseDevice(status int, contentType string, body []byte) (*DeviceAuthorization, error) {
	var dj deviceJSON
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if mediaType == "application/x-www-form-urlencoded" {
		v, _ := url.ParseQuery(string(body))
		dj = deviceJSON{DeviceCode: v.Get("device_code"), UserCode: v.Get("user_code"),
			VerificationURI: v.Get("verification_uri"), VerificationURIComplete: v.Get("verification_uri_complete"),
			ExpiresIn: formSeconds(v.Get("expires_in")), Interval: formSeconds(v.Get("interval"))}
	} else if json.Unmarshal(body, &dj) != nil {
		dj = deviceJSON{}
	}
	if status < 200 || status > 299 || dj.DeviceCode == "" {
		_, err := parseResponse(status, contentType, body)
		var pe *Error
		if err == nil || (status < 300 && errors.As(err, &pe) && pe.Code == "" && pe.Class == Refused) {
			err = &Error{Class: Refused, Status: status, Description: "the device authorization response has no device_code"}
		}
		return nil, err
	}
	da := &DeviceAuthorization{
		DeviceCode: dj.DeviceCode, UserCode: dj.UserCode,
		VerificationURI:         cmp.Or(dj.VerificationURI, dj.VerificationURL),
		VerificationURIComplete: dj.VerificationURIComplete,
		ExpiresIn:               time.Duration(dj.ExpiresIn) * time.Second,
		Interval:                time.Duration(dj.Interval) * time.Second,
	}
	if da.Interval <= 0 {
		da.Interval = DefaultDeviceInterval
	}
	if da.UserCode == "" || da.VerificationURI == "" || da.ExpiresIn <= 0 {
		return nil, &Error{Class: Refused, Status: status, Description: "the device authorization response lacks user_code, verification_uri or expires_in"}
	}
	// The user code is shown to people (status, the CLI) and the device code
	// sent back in every poll: printable ASCII only (RFC 8628 §6.1 advises a
	// small character set), else the answer is refused, the value not shown.
	for _, f := range []struct {
		name, value string
		allowed     func(byte) bool
	}{{"user_code", da.UserCode, userCodeChars}, {"device_code", da.DeviceCode, tokenChars}} {
		if i := strings.IndexFunc(f.value, func(r rune) bool { return r >= utf8.RuneSelf || !f.allowed(byte(r)) }); i >= 0 {
			return nil, &Error{Class: Refused, Status: status, Description: fmt.Sprintf(
				"the device authorization response's %s holds %s at byte %d; the answer is refused and the value not shown", f.name, describeByte(f.value[i]), i)}
		}
	}
	for _, u := range []string{da.VerificationURI, da.VerificationURIComplete} {
		if parsed, err := url.Parse(u); u != "" && (err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http")) {
			return nil, &Error{Class: Refused, Status: status, Description: fmt.Sprintf("the device authorization response has an unusable verification URI %q", u)}
		}
	}
	return da, nil
}

// userCodeChars: printable ASCII, spaces included (some codes are grouped).
func userCodeChars(c byte) bool { return 0x20 <= c && c <= 0x7e }

// PollDevice asks the token endpoint once whether the user has decided
// (§3.4). A decision not yet made, or a refusal, is an *Error whose Code is
// one of the Device* answers (or another refusal).
func (c *Client) PollDevice(ctx context.Context, e *Endpoint, deviceCode string) (*Token, error) {
	r := e.Redactor(deviceCode)
	params := []param{{"grant_type", string(GrantDeviceCode)}, {"device_code", deviceCode}}
	req, err := e.assemble(ctx, codeGrant, e.TokenURL, params)
	if err != nil {
		return nil, r.refusal(err)
	}
	return c.token(e, req, r)
}
