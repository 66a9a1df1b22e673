package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// runSmoke is `strata-load smoke [flags]`: one pass over what a running
// system must do end to end, from outside, as its users do. Each step
// prints one line and the first failure stops the run:
//
//   - the OIDC sign-in (code + PKCE) of the demo users alice and admin;
//   - a transfer with an Idempotency-Key, then its replay (same status and
//     bytes, Idempotent-Replayed: true);
//   - the transfer in analytics' activity of both accounts;
//   - a session revoked: a write with its access token is refused with 401;
//   - a short overload of the ledger that gets 429s with Retry-After, and
//     no 5xx;
//   - the transfer's trace in Jaeger (it is sent sampled, with a traceparent
//     of its own), across the ledger and the session service;
//   - every service's series in Prometheus (up == 1 and its own metrics).
//
// make compose-test runs it against docker compose; it works as well
// against make run (-jaeger and -prometheus empty skip those steps).
func runSmoke(ctx context.Context, args []string, src *mtls.Source, o options, w io.Writer) error {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	jaeger := fs.String("jaeger", "", "Jaeger query URL (http://127.0.0.1:16686); empty skips the trace step")
	prom := fs.String("prometheus", "", "Prometheus URL (http://127.0.0.1:9090); empty skips the metrics step")
	services := fs.String("services", "auth,ledger,analytics,session", "the services whose series Prometheus must have")
	bound := fs.Duration("bound", 60*time.Second, "how long analytics, Jaeger and Prometheus may take to show what is looked for")
	burst := fs.Int("burst", 400, "concurrent requests of the overload step (doubled up to 3 times until a 429)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	api := strata.New(o.endpoints, &tls.Config{RootCAs: src.Roots()}, 64)
	s := &smoke{api: api, w: w, start: time.Now()}

	var alice, admin *strata.User
	if err := s.step("sign-in (OIDC code + PKCE) of alice and admin", func() (string, error) {
		var err error
		if alice, err = api.Login(ctx, "alice", o.password); err != nil {
			return "", err
		}
		if admin, err = api.Login(ctx, "admin", o.password); err != nil {
			return "", err
		}
		return "access tokens for session " + claim(alice.Tokens.AccessToken, "sid"), nil
	}); err != nil {
		return err
	}

	var from, to strata.Account
	var transfer strata.Transfer
	traceID := randomHex(16)
	if err := s.step("transfer with an Idempotency-Key, and its replay", func() (string, error) {
		for _, a := range []*strata.Account{&from, &to} {
			r := api.DoPatient(ctx, 5, alice.Tokens.AccessToken, http.MethodPost, api.E.Ledger+"/v1/accounts",
				map[string]string{"currency": "EUR", "name": "smoke"}, strata.NewKey())
			if err := r.Decode(http.StatusCreated, a); err != nil {
				return "", fmt.Errorf("open account: %w", err)
			}
		}
		if err := api.Deposit(ctx, admin, from.ID, 10000); err != nil {
			return "", fmt.Errorf("deposit: %w", err)
		}
		key := strata.NewKey()
		body, _ := json.Marshal(strata.TransferBody(from.ID, to.ID, 2500))
		first, err := s.post(ctx, alice, api.E.Ledger+"/v1/transfers", body, key, traceID)
		if err != nil {
			return "", err
		}
		if first.status != http.StatusCreated {
			return "", fmt.Errorf("transfer: status %d: %s", first.status, first.body)
		}
		if err := json.Unmarshal(first.body, &transfer); err != nil || transfer.ID == "" {
			return "", fmt.Errorf("transfer: body %s", first.body)
		}
		again, err := s.post(ctx, alice, api.E.Ledger+"/v1/transfers", body, key, "")
		if err != nil {
			return "", err
		}
		if again.status != first.status || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
			return "", fmt.Errorf("replay: status %d, Idempotent-Replayed %q, same body %v",
				again.status, again.header.Get("Idempotent-Replayed"), bytes.Equal(again.body, first.body))
		}
		acc, err := api.GetAccount(ctx, alice, from.ID)
		if err != nil {
			return "", err
		}
		if acc.Balance != 7500 {
			return "", fmt.Errorf("balance after one transfer and its replay: %d, want 7500", acc.Balance)
		}
		return fmt.Sprintf("transfer %s 201; replay 201, same bytes, Idempotent-Replayed: true; balance 7500", transfer.ID), nil
	}); err != nil {
		return err
	}

	if err := s.step("the transfer in analytics' activity", func() (string, error) {
		var seen []string
		err := s.eventually(ctx, *bound, func() error {
			seen = seen[:0]
			for _, acc := range []strata.Account{from, to} {
				var page struct {
					Events []struct {
						Type       string `json:"type"`
						TransferID string `json:"transfer_id"`
					} `json:"events"`
				}
				r := api.Do(ctx, alice.Tokens.AccessToken, http.MethodGet, api.E.Analytics+"/v1/accounts/"+acc.ID+"/activity", nil, "")
				if err := r.Decode(http.StatusOK, &page); err != nil {
					return err
				}
				if !slices.ContainsFunc(page.Events, func(e struct {
					Type       string `json:"type"`
					TransferID string `json:"transfer_id"`
				}) bool {
					return e.TransferID == transfer.ID && e.Type == "transfer.posted"
				}) {
					return fmt.Errorf("account %s: transfer %s not in its activity yet", acc.ID, transfer.ID)
				}
				seen = append(seen, acc.ID)
			}
			return nil
		})
		return fmt.Sprintf("transfer.posted in the activity of both accounts after %s", s.since()), err
	}); err != nil {
		return err
	}

	if err := s.step("session revoke", func() (string, error) {
		other, err := api.Login(ctx, "alice", o.password)
		if err != nil {
			return "", err
		}
		sid := claim(other.Tokens.AccessToken, "sid")
		if sid == "" || sid == claim(alice.Tokens.AccessToken, "sid") {
			return "", fmt.Errorf("second sign-in: session %q, want a new one", sid)
		}
		r := api.Do(ctx, other.Tokens.AccessToken, http.MethodDelete, api.E.Session+"/v1/sessions/"+sid, nil, "")
		if r.Status != http.StatusNoContent {
			return "", fmt.Errorf("DELETE /v1/sessions/%s: %d %s", sid, r.Status, r.Detail())
		}
		var status int
		err = s.eventually(ctx, 10*time.Second, func() error {
			r := api.Do(ctx, other.Tokens.AccessToken, http.MethodPost, api.E.Ledger+"/v1/accounts",
				map[string]string{"currency": "EUR", "name": "after revoke"}, strata.NewKey())
			if status = r.Status; status != http.StatusUnauthorized {
				return fmt.Errorf("a write with the revoked session's token: %d, want 401", r.Status)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		r = api.Do(ctx, alice.Tokens.AccessToken, http.MethodGet, api.E.Ledger+"/v1/accounts/"+from.ID, nil, "")
		if r.Status != http.StatusOK {
			return "", fmt.Errorf("the other session after the revoke: %d, want 200", r.Status)
		}
		return "DELETE 204; its token's write 401; the other session still 200", nil
	}); err != nil {
		return err
	}

	if err := s.step("short overload of the ledger", func() (string, error) {
		for n, round := *burst, 0; round < 4; n, round = n*2, round+1 {
			var ok, shed, failed, other atomic.Int64
			var retryAfter atomic.Bool
			var wg sync.WaitGroup
			begin := time.Now()
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := api.Do(ctx, alice.Tokens.AccessToken, http.MethodGet, api.E.Ledger+"/v1/accounts/"+from.ID+"/entries", nil, "")
					switch {
					case r.Status == http.StatusOK:
						ok.Add(1)
					case r.Status == http.StatusTooManyRequests:
						shed.Add(1)
						if r.RetryAfter > 0 {
							retryAfter.Store(true)
						}
					case r.Status >= 500 || r.Err != nil:
						failed.Add(1)
					default:
						other.Add(1)
					}
				}()
			}
			wg.Wait()
			line := fmt.Sprintf("%d concurrent in %s: %d ok, %d 429, %d 5xx/errors, %d other",
				n, time.Since(begin).Round(time.Millisecond), ok.Load(), shed.Load(), failed.Load(), other.Load())
			if failed.Load() > 0 || other.Load() > 0 {
				return line, errors.New("overload must be shed with 429, never fail")
			}
			if shed.Load() > 0 {
				if !retryAfter.Load() {
					return line, errors.New("a 429 without Retry-After")
				}
				return line, nil
			}
			fmt.Fprintf(w, "           %s; more\n", line)
		}
		return "", errors.New("no 429 at any burst size")
	}); err != nil {
		return err
	}

	if *jaeger != "" {
		if err := s.step("the transfer's trace in Jaeger", func() (string, error) {
			var names []string
			err := s.eventually(ctx, *bound, func() error {
				var err error
				names, err = traceServices(ctx, *jaeger, traceID)
				if err != nil {
					return err
				}
				for _, want := range []string{"ledger", "session"} {
					if !slices.Contains(names, want) {
						return fmt.Errorf("trace %s has spans of %v, not yet of %s", traceID, names, want)
					}
				}
				return nil
			})
			return fmt.Sprintf("trace %s spans %s", traceID, strings.Join(names, ", ")), err
		}); err != nil {
			return err
		}
	}

	if *prom != "" {
		if err := s.step("each service's series in Prometheus", func() (string, error) {
			var counts, cache map[string]int
			want := strings.Split(*services, ",")
			err := s.eventually(ctx, *bound, func() error {
				up, err := promQuery(ctx, *prom, `up{job=~"`+strings.Join(want, "|")+`"} == 1`, "job")
				if err != nil {
					return err
				}
				if counts, err = promQuery(ctx, *prom, `count by (job) ({job=~"`+strings.Join(want, "|")+`"})`, "job"); err != nil {
					return err
				}
				for _, svc := range want {
					if up[svc] == 0 {
						return fmt.Errorf("%s: no target up", svc)
					}
					if counts[svc] < 10 {
						return fmt.Errorf("%s: %d series", svc, counts[svc])
					}
				}
				if !slices.Contains(want, "session") {
					return nil
				}
				// The session cache answered from Redis: lookups scraped,
				// none bypassed (a bypass means Redis refused or failed).
				if cache, err = promQuery(ctx, *prom, `sum by (result) (strata_session_cache_requests_total)`, "result"); err != nil {
					return err
				}
				if cache["bypass"] > 0 {
					return permanent{errors.New("the session cache bypassed Redis")}
				}
				if cache["hit"]+cache["miss"] == 0 {
					return errors.New("no session cache lookup scraped yet")
				}
				return nil
			})
			parts := make([]string, 0, len(want))
			for _, svc := range want {
				parts = append(parts, fmt.Sprintf("%s %d", svc, counts[svc]))
			}
			line := "series per service (target up): " + strings.Join(parts, ", ")
			if cache != nil {
				line += fmt.Sprintf("; session cache: %d hit, %d miss, %d bypass", cache["hit"], cache["miss"], cache["bypass"])
			}
			return line, err
		}); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "smoke: all steps passed in %s\n", time.Since(s.start).Round(100*time.Millisecond))
	return nil
}

type smoke struct {
	api       *strata.API
	w         io.Writer
	start     time.Time
	stepStart time.Time
}

// step runs one step and prints its outcome and duration.
func (s *smoke) step(name string, f func() (string, error)) error {
	s.stepStart = time.Now()
	detail, err := f()
	d := time.Since(s.stepStart).Round(100 * time.Millisecond)
	if err != nil {
		fmt.Fprintf(s.w, "FAIL %-48s %6s  %s: %v\n", name, d, detail, err)
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(s.w, "ok   %-48s %6s  %s\n", name, d, detail)
	return nil
}

func (s *smoke) since() time.Duration { return time.Since(s.stepStart).Round(100 * time.Millisecond) }

// permanent is an error that waiting will not cure: eventually stops.
type permanent struct{ error }

// eventually retries f every half second until it succeeds, fails with a
// permanent error, or bound passes.
func (s *smoke) eventually(ctx context.Context, bound time.Duration, f func() error) error {
	deadline := time.Now().Add(bound)
	for {
		err := f()
		var p permanent
		if err == nil || errors.As(err, &p) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends a POST as u with an Idempotency-Key and, when traceID is set,
// a sampled W3C traceparent, and keeps the headers the API client drops.
func (s *smoke) post(ctx context.Context, u *strata.User, url string, body []byte, key, traceID string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+u.Tokens.AccessToken)
	req.Header.Set("Idempotency-Key", key)
	if traceID != "" {
		req.Header.Set("traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
	}
	resp, err := s.api.HTTP.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// claim reads one string claim of a JWT without verifying it (the
// services verify; this only needs the session id the token names).
func claim(jwt, name string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	v, _ := m[name].(string)
	return v
}

// traceServices returns the service names in a Jaeger trace.
func traceServices(ctx context.Context, base, traceID string) ([]string, error) {
	var out struct {
		Data []struct {
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := getJSON(ctx, base+"/api/traces/"+traceID, &out); err != nil {
		return nil, err
	}
	var names []string
	for _, t := range out.Data {
		for _, p := range t.Processes {
			if !slices.Contains(names, p.ServiceName) {
				names = append(names, p.ServiceName)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// promQuery runs an instant query and returns its values by one label.
func promQuery(ctx context.Context, base, q, label string) (map[string]int, error) {
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(ctx, base+"/api/v1/query?query="+url.QueryEscape(q), &out); err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, r := range out.Data.Result {
		var v int
		if s, ok := r.Value[1].(string); ok {
			_, _ = fmt.Sscan(s, &v)
		}
		m[r.Metric[label]] += v
	}
	return m, nil
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
