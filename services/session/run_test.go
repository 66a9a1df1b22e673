package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/session/api"
)

// testEnv is the session service's environment against the native stack,
// trusting a test issuer whose JWKS is served over mTLS as auth serves it.
func testEnv(t *testing.T) (*testenv.Stack, map[string]string, *authntest.Issuer) {
	st := testenv.StartStack(t, "postgres", "redis")
	iss := authntest.NewIssuer(t)
	env := st.Env("session")
	env["STRATA_PG_URL"] = st.PGURL("session", "session_test")
	env["STRATA_REDIS_ADDR"] = "127.0.0.1:" + strconv.Itoa(st.RedisPort)
	env["STRATA_AUTH_ISSUER"] = authntest.IssuerURL
	env["STRATA_AUTH_JWKS_URL"] = testenv.ServeJWKS(t, st, iss)
	return st, env, iss
}

func TestBoot(t *testing.T) {
	st, env, _ := testEnv(t)
	testenv.CheckBoot(t, st, "session", run, env)
}

// userToken is user's access token for the session service, bound to the
// SSO session sid.
func userToken(t *testing.T, iss *authntest.Issuer, user, sid string) string {
	return iss.Token(t, authn.Claims{Claims: jwt.Claims{Subject: user, Audience: jwt.Audience{"session"}}, Roles: []string{"customer"}, SessionID: sid})
}

// createSession calls the internal API as the auth service does.
func createSession(t *testing.T, st *testenv.Stack, svc *testenv.Service, user string) string {
	body, _ := json.Marshal(map[string]any{"user_id": user, "family_id": "fam-" + user, "expires_at": time.Now().Add(time.Hour)})
	resp, err := st.InternalClient(t, "auth", mtls.ID("session")).Post("https://"+svc.Internal+"/internal/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ SID string }
	if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&s) != nil {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	return s.SID
}

func do(t *testing.T, c *http.Client, method, url, token string) (int, map[string]any) {
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestPublicAPIOwnSessionsOnly(t *testing.T) {
	st, env, iss := testEnv(t)
	svc := testenv.StartService(t, run, env)
	st.Check(t, api.Document, svc.Public, svc.Internal)
	pub := st.PublicClient(t)
	base := "https://" + svc.Public + "/v1/sessions"
	alice, bob := "alice-"+strconv.FormatInt(time.Now().UnixNano(), 36), "bob-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	sidA := createSession(t, st, svc, alice)
	sidB := createSession(t, st, svc, bob)
	tokA, tokB := userToken(t, iss, alice, sidA), userToken(t, iss, bob, sidB)

	if code, _ := do(t, pub, "GET", base, ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	code, out := do(t, pub, "GET", base, tokA)
	list, _ := out["sessions"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["sid"] != sidA {
		t.Fatalf("alice's list: %d %v", code, out)
	}
	if code, _ := do(t, pub, "GET", base+"/"+sidB, tokA); code != 404 {
		t.Fatalf("alice reading bob's session: %d", code)
	}
	if code, _ := do(t, pub, "DELETE", base+"/"+sidB, tokA); code != 404 {
		t.Fatalf("alice deleting bob's session: %d", code)
	}
	if code, _ := do(t, pub, "GET", base+"/"+sidB, tokB); code != 200 {
		t.Fatalf("bob's session after alice's attempt: %d", code)
	}
	// A token whose session has ended ends nothing more: alice's second
	// session survives a DELETE with the first session's token.
	sidA2 := createSession(t, st, svc, alice)
	if code, _ := do(t, pub, "DELETE", base+"/"+sidA, tokA); code != 204 {
		t.Fatalf("alice deleting her session: %d", code)
	}
	if code, _ := do(t, pub, "DELETE", base+"/"+sidA2, tokA); code != 401 {
		t.Fatalf("deleting with the token of an ended session: %d, want 401", code)
	}
	if code, _ := do(t, pub, "GET", base+"/"+sidA2, userToken(t, iss, alice, sidA2)); code != 200 {
		t.Fatalf("alice's second session after the refused delete: %d", code)
	}
	internal := st.InternalClient(t, "ledger", mtls.ID("session"))
	if code, _ := do(t, internal, "GET", "https://"+svc.Internal+"/internal/sessions/"+sidA, ""); code != 404 {
		t.Fatalf("internal read after delete: %d", code)
	}
	// The internal API is closed to workloads not on the route's list.
	if code, _ := do(t, st.InternalClient(t, "loadtest", mtls.ID("session")), "GET", "https://"+svc.Internal+"/internal/sessions/"+sidB, ""); code != 403 {
		t.Fatalf("loadtest reading a session internally: %d", code)
	}
}
