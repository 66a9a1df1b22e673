package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RequestID lets a client quote the request when asking an operator.
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter, when set, is also sent as the Retry-After header (seconds).
	RetryAfter time.Duration `json:"-"`
}

// New returns a problem with the standard title for status.
func New(status int, detail string) Problem {
	return Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// WithRetryAfter returns p with a Retry-After hint.
func (p Problem) WithRetryAfter(d time.Duration) Problem { p.RetryAfter = d; return p }

// Write sends p on w.
func (p Problem) Write(w http.ResponseWriter) {
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((p.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// RequestIDHeader carries a request's id: from a client, and on every
// response the server sends.
const RequestIDHeader = "X-Request-ID"

// Send writes p as the answer to r. Instance, when empty, is r's path;
// RequestID, when empty, is the id the server already put on the response
// (RequestIDHeader), which its request-id middleware does before any
// handler runs. A gin handler that must also stop its chain uses server.Abort.
func (p Problem) Send(w http.ResponseWriter, r *http.Request) {
	if p.RequestID == "" {
		p.RequestID = w.Header().Get(RequestIDHeader)
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	p.Write(w)
}
