package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Encoding says how request parameters are sent.
type Encoding string

const (
	EncodeForm  Encoding = "form"  // application/x-www-form-urlencoded body
	EncodeJSON  Encoding = "json"  // application/json body
	EncodeQuery Encoding = "query" // URL query string of a bodiless POST (Echo360's Swagger form)
)

// Encodings lists the encodings a config may choose.
var Encodings = []Encoding{EncodeForm, EncodeJSON, EncodeQuery}

// Valid reports whether e is a known encoding.
func (e Encoding) Valid() bool { return e == EncodeForm || e == EncodeJSON || e == EncodeQuery }

// userAgent names us to providers; some block Go's default agent.
const userAgent = "vault-plugin-secrets-tokenbroker"

// encode builds the POST that carries params to target in enc.
func (e *Endpoint) encode(ctx context.Context, enc Encoding, target string, params []param) (*http.Request, error) {
	var (
		body        io.Reader
		contentType string
	)
	switch enc {
	case EncodeJSON:
		obj := make(map[string]any, len(params))
		for _, p := range params {
			switch v := p.value.(type) {
			case []string:
				if e.row().scopeArray {
					obj[p.key] = v
				} else {
					obj[p.key] = p.text()
				}
			case repeated:
				if len(v) == 1 {
					obj[p.key] = v[0]
				} else {
					obj[p.key] = []string(v)
				}
			default:
				obj[p.key] = p.text()
			}
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	case EncodeQuery:
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("token URL: %w", err)
		}
		q := u.Query()
		for _, p := range params {
			q[p.key] = p.texts()
		}
		u.RawQuery = q.Encode()
		target = u.String()
	default:
		form := make(url.Values, len(params))
		for _, p := range params {
			form[p.key] = p.texts()
		}
		body, contentType = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}
