package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/strata-ref/strata/libs/problem"
)

// DecodeJSON reads exactly one JSON object from r's body into v, rejecting
// unknown fields, trailing data and a wrong content type. On failure it
// answers w with the problem (400, 413 or 415) and returns false; the
// handler just returns.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mediaType(r.Header.Get("Content-Type")) != "application/json" {
		problem.New(http.StatusUnsupportedMediaType, "Content-Type must be application/json").Send(w, r)
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err == nil && !utf8.Valid(body) {
		// encoding/json would silently turn invalid bytes into U+FFFD;
		// RFC 8259 requires UTF-8, so refuse instead of guessing.
		err = errors.New("body is not valid UTF-8")
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit)).Send(w, r)
		} else {
			problem.New(http.StatusBadRequest, "malformed JSON body: "+err.Error()).Send(w, r)
		}
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit)).Send(w, r)
		return false
	}
	problem.New(http.StatusBadRequest, "malformed JSON body: "+describe(err)).Send(w, r)
	return false
}

// mediaType is a Content-Type without its parameters ("; charset=utf-8").
func mediaType(ct string) string {
	if i := strings.IndexAny(ct, " ;"); i >= 0 {
		return ct[:i]
	}
	return ct
}

// describe turns a decoding error into a message safe to show a client.
func describe(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF):
		return "empty body"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "not a single JSON object"
	}
}
