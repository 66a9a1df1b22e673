package authn_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
)

// With two auth replicas, a JWKS refresh that finds the first one gone is
// answered by the second, and later refreshes start with the one that answered.
func TestJWKSFailsOverToTheNextReplica(t *testing.T) {
	iss := authntest.NewIssuer(t)
	dead, _ := jwksServer(t, iss)
	live, fetches := jwksServer(t, iss)
	dead.Close()
	jwks := authn.NewJWKS(dead.URL+"/.well-known/jwks.json, "+live.URL+"/.well-known/jwks.json", live.Client(), time.Nanosecond)
	v, err := authn.NewValidator(authn.Config{Issuer: authntest.IssuerURL, Audience: "ledger", Keys: jwks})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), iss.Token(t, claims(nil))); err != nil {
		t.Fatalf("validation with one of two JWKS replicas down: %v", err)
	}
	if err := jwks.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fetches.Load() != 2 {
		t.Fatalf("live replica fetched %d times, want 2", fetches.Load())
	}
	all := authn.NewJWKS(dead.URL, live.Client(), 0)
	if err := all.Refresh(context.Background()); err == nil {
		t.Fatal("refresh with every replica down succeeded")
	}
}

// The token endpoint: a dead replica or a 5xx sends the request to the
// next; a 4xx is final (another replica would refuse it too).
func TestTokenClientFailsOverOnlyOnUnavailability(t *testing.T) {
	var hits [3]atomic.Int64
	server := func(i int, status int) *httptest.Server {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			if status == 200 {
				json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-" + r.FormValue("client_id"), "expires_in": 600})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"error": "x"})
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	dead := server(0, 200)
	dead.Close()
	failing, ok := server(1, 503), server(2, 200)
	c := &authn.TokenClient{URL: dead.URL + "/oauth2/token," + failing.URL + "/oauth2/token," + ok.URL + "/oauth2/token",
		ClientID: "ledger", HTTP: ok.Client()}
	tok, err := c.ServiceToken(context.Background())
	if err != nil || tok == "" {
		t.Fatalf("token %q, err %v", tok, err)
	}
	if hits[1].Load() != 1 || hits[2].Load() != 1 {
		t.Fatalf("hits: 503 replica %d, good replica %d", hits[1].Load(), hits[2].Load())
	}

	refusing := server(0, 400)
	c = &authn.TokenClient{URL: refusing.URL + "," + ok.URL, ClientID: "ledger", HTTP: ok.Client()}
	if _, err := c.ServiceToken(context.Background()); err == nil {
		t.Fatal("a 400 was retried on another replica until one said yes")
	}
	if hits[2].Load() != 1 {
		t.Fatal("a 400 was sent to the next replica")
	}
}
