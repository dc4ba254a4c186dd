package provider

import (
	"fmt"
	"strings"
	"time"
)

// Class is what a failed exchange means for what was sent. Every provider
// answer is a success or exactly one of these.
type Class int

const (
	// Temporary: an outage (5xx, 429, 408, a gateway's HTML page, or a
	// connection that failed before the request was written). Nothing was
	// spent: the same refresh token may be sent again later.
	Temporary Class = iota + 1
	// Lost: the request was written and no answer came (a dropped
	// connection, a timeout). A refresh token it carried may be spent.
	Lost
	// Refused: any other answer that is not a token: a 4xx, a 3xx, or a 2xx
	// carrying an error or no usable token. What was sent will not work.
	Refused
)

func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case Lost:
		return "lost"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Error is a failed exchange: a provider's refusal, an unusable answer, or
// none. Its message never carries a secret: descriptions are cleaned of the
// credentials that were sent.
type Error struct {
	Class       Class
	Status      int    // HTTP status; 0 when no response arrived
	Code        string // OAuth error code (RFC 6749 §5.2) or the provider's equivalent
	Description string
	RetryAfter  time.Duration // from a Retry-After header (429/503)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("provider")
	if e.Status != 0 {
		fmt.Fprintf(&b, " returned HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	return b.String()
}

// classOf classifies an HTTP answer that carried no usable token.
func classOf(status int) Class {
	if status >= 500 || status == 429 || status == 408 {
		return Temporary
	}
	return Refused
}
