// Package openapi serves a service's OpenAPI 3.1 document. Each service
// keeps its document in YAML beside its code (services/<name>/api), for
// people to read and review; it is served as JSON at GET /openapi.json on
// the public listener, without a token and never shed. The checks that the
// service answers what the document promises are in openapitest (the
// routes) and libs/testenv (every request and response of the integration
// tests).
package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/goccy/go-yaml"
)

// Path is where every service serves its document.
const Path = "/openapi.json"

// Document is one service's OpenAPI document.
type Document struct {
	yaml, json []byte
}

// MustLoad converts the YAML document to JSON once; a document that does
// not parse is a build defect, so it panics (every service's route test
// loads its document).
func MustLoad(doc []byte) *Document {
	d, err := Load(doc)
	if err != nil {
		panic(err)
	}
	return d
}

// Load converts the YAML document to indented JSON, keeping the key order.
func Load(doc []byte) (*Document, error) {
	raw, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	out.WriteByte('\n')
	return &Document{yaml: doc, json: out.Bytes()}, nil
}

// JSON returns the document as served.
func (d *Document) JSON() []byte { return d.json }

// YAML returns the document as written.
func (d *Document) YAML() []byte { return d.yaml }

// ServeHTTP answers with the document as JSON: a service mounts d at
// GET Path.
func (d *Document) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(d.json)
}
