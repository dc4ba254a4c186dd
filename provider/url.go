package provider

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckURL accepts https URLs, and http only for loopback hosts, so client
// secrets never cross a network in clear text.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("credentials in the URL are not allowed")
	}
	if u.Fragment != "" {
		return fmt.Errorf("a fragment is not allowed")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("must use https (http is allowed only for loopback hosts)")
	default:
		return fmt.Errorf("scheme %q not allowed: must be https", u.Scheme)
	}
}

// IsLoopback reports whether host is localhost or a loopback IP (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
