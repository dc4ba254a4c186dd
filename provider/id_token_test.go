package provider

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestIDTokenExpiry(t *testing.T) {
	jws := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	cases := []struct {
		name, token string
		want        time.Time
		ok          bool
	}{
		{"an exp", jws(`{"iss":"x","exp":1700000000}`), time.Unix(1700000000, 0), true},
		{"a fractional exp", jws(`{"exp":1700000000.5}`), time.Unix(1700000000, 0), true},
		{"no exp", jws(`{"iss":"x"}`), time.Time{}, false},
		{"a numeric string exp", jws(`{"exp":"1700000000"}`), time.Unix(1700000000, 0), true},
		{"a word for exp", jws(`{"exp":"soon"}`), time.Time{}, false},
		{"a negative exp", jws(`{"exp":-1}`), time.Time{}, false},
		{"a huge exp", jws(`{"exp":1e300}`), time.Time{}, false},
		{"not JSON", jws(`exp`), time.Time{}, false},
		{"two parts", "a.b", time.Time{}, false},
		{"padding in the payload", "a." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1}`)) + "=.c", time.Time{}, false},
		{"empty", "", time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := IDTokenExpiry(tc.token)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Errorf("IDTokenExpiry(%q) = %v, %v; want %v, %v", tc.token, got, ok, tc.want, tc.ok)
			}
		})
	}
}
