package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestStartDevice(t *testing.T) {
	cases := []struct {
		name, contentType, body string
		status                  int
		want                    DeviceAuthorization
		wantErr                 string
	}{
		{"RFC 8628 JSON", "application/json", `{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://idp.example/device",
			"verification_uri_complete":"https://idp.example/device?user_code=WDJB-MJHT","expires_in":1800,"interval":7}`, 200,
			DeviceAuthorization{DeviceCode: "dc", UserCode: "WDJB-MJHT", VerificationURI: "https://idp.example/device",
				VerificationURIComplete: "https://idp.example/device?user_code=WDJB-MJHT", ExpiresIn: 1800 * time.Second, Interval: 7 * time.Second}, ""},
		{"Google's verification_url and no interval", "application/json", `{"device_code":"dc","user_code":"ABC","verification_url":"https://www.google.com/device","expires_in":"1800"}`, 200,
			DeviceAuthorization{DeviceCode: "dc", UserCode: "ABC", VerificationURI: "https://www.google.com/device", ExpiresIn: 1800 * time.Second, Interval: 5 * time.Second}, ""},
		{"GitHub's form answer", "application/x-www-form-urlencoded", "device_code=dc&user_code=A-B&verification_uri=https%3A%2F%2Fgithub.com%2Flogin%2Fdevice&expires_in=899&interval=5", 200,
			DeviceAuthorization{DeviceCode: "dc", UserCode: "A-B", VerificationURI: "https://github.com/login/device", ExpiresIn: 899 * time.Second, Interval: 5 * time.Second}, ""},
		{"an OAuth error", "application/json", `{"error":"unauthorized_client","error_description":"no device flow for this client"}`, 400, DeviceAuthorization{}, "unauthorized_client"},
		{"an error inside HTTP 200", "application/json", `{"error":"device_flow_disabled"}`, 200, DeviceAuthorization{}, "device_flow_disabled"},
		{"no device code", "application/json", `{"user_code":"x"}`, 200, DeviceAuthorization{}, "no device_code"},
		{"a javascript verification URI", "application/json", `{"device_code":"dc","user_code":"u","verification_uri":"javascript:alert(1)","expires_in":60}`, 200, DeviceAuthorization{}, "unusable verification URI"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, rec := serve(t, c.status, c.contentType, c.body)
			hc, _ := NewHTTPClient("")
			e := Endpoint{Dialect: OAuth2, ClientID: "app", ClientSecret: "sec", DeviceURL: srv.URL + "/device", Scopes: []string{"read"}}
			got, err := (&Client{HTTP: hc}).StartDevice(context.Background(), &e)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || *got != c.want {
				t.Fatalf("StartDevice = %+v, %v; want %+v", got, err, c.want)
			}
			form, _ := url.ParseQuery(rec.body)
			if rec.path != "/device" || form.Get("scope") != "read" || !strings.HasPrefix(rec.auth, "Basic ") {
				t.Fatalf("request: path %s, form %v, auth %q; want /device, scope=read, HTTP Basic", rec.path, form, rec.auth)
			}
		})
	}
}

func TestPollDevice(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		body     string
		wantCode string
	}{
		{"pending", 400, `{"error":"authorization_pending"}`, DevicePending},
		{"slow down", 400, `{"error":"slow_down"}`, DeviceSlowDown},
		{"pending inside HTTP 200 (GitHub)", 200, `{"error":"authorization_pending"}`, DevicePending},
		{"denied", 400, `{"error":"access_denied"}`, DeviceDenied},
		{"expired", 400, `{"error":"expired_token"}`, DeviceExpired},
		{"a token", 200, `{"access_token":"at","refresh_token":"rt"}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, rec := serve(t, c.status, "application/json", c.body)
			hc, _ := NewHTTPClient("")
			e := Endpoint{Dialect: OAuth2, ClientID: "app", TokenURL: srv.URL}
			tok, err := (&Client{HTTP: hc}).PollDevice(context.Background(), &e, "the-device-code")
			form, _ := url.ParseQuery(rec.body)
			if form.Get("grant_type") != string(GrantDeviceCode) || form.Get("device_code") != "the-device-code" || form.Get("client_id") != "app" {
				t.Fatalf("form = %v, want the device_code grant for client app", form)
			}
			var pe *Error
			switch {
			case c.wantCode == "" && (err != nil || tok.AccessToken != "at"):
				t.Fatalf("PollDevice = %+v, %v; want token at", tok, err)
			case c.wantCode != "" && (!errors.As(err, &pe) || pe.Code != c.wantCode):
				t.Fatalf("PollDevice err = %v, want code %s", err, c.wantCode)
			}
		})
	}
}

// TestDeviceAnswerStrings: a user code is shown to people and a device code
// sent back in every poll; either with a control or non-ASCII character
// refuses the answer, and the error does not show the value.
func TestDeviceAnswerStrings(t *testing.T) {
	cases := []struct {
		name, userCode, deviceCode string
		refused                    bool
	}{
		{"grouped user code", "WDJB MJHT", "dc-1", false},
		{"user code with a line break", "WDJB\r\nMJHT", "dc-1", true},
		{"user code with an escape sequence", "\x1b[2JWDJB", "dc-1", true},
		{"non-ASCII user code", "WDJB-MJHT\u202e", "dc-1", true},
		{"device code with a space", "WDJB-MJHT", "dc 1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"device_code": c.deviceCode, "user_code": c.userCode,
				"verification_uri": "https://idp.example/device", "expires_in": 600})
			_, err := parseDevice(200, "application/json", body)
			if got := err != nil; got != c.refused {
				t.Fatalf("parseDevice: err = %v, want refused %v", err, c.refused)
			}
			if err != nil && (strings.Contains(err.Error(), c.userCode) || strings.Contains(err.Error(), c.deviceCode)) {
				t.Fatalf("the error %q shows the value", err)
			}
		})
	}
}
