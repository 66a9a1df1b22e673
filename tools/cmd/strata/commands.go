package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// refusal is a service's error answer, from its problem+json body.
type refusal struct {
	service    string
	status     int
	title      string
	detail     string
	requestID  string
	retryAfter string
	hint       string
}

func (r *refusal) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s refused the request: %d %s", r.service, r.status, r.title)
	if r.detail != "" {
		fmt.Fprintf(&b, ": %s", r.detail)
	}
	if r.retryAfter != "" {
		fmt.Fprintf(&b, "; retry after %s s", r.retryAfter)
	}
	if r.requestID != "" {
		fmt.Fprintf(&b, " (request id %s)", r.requestID)
	}
	if r.hint != "" {
		fmt.Fprintf(&b, "\n%s", r.hint)
	}
	return b.String()
}

// call sends one request with the stored access token and decodes a 2xx
// JSON answer into out (a *json.RawMessage keeps it as is).
func (a *app) call(ctx context.Context, base, method, path string, body any, header http.Header, out any) error {
	tok, err := a.accessToken(ctx)
	if err != nil {
		return err
	}
	hc, err := a.httpClient()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", a.service(base), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", a.service(base), err)
	}
	if resp.StatusCode >= 400 {
		return a.refused(base, resp, b)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s answered %d with a body that is not JSON: %w", a.service(base), resp.StatusCode, err)
	}
	return nil
}

func (a *app) refused(base string, resp *http.Response, body []byte) error {
	r := &refusal{service: a.service(base), status: resp.StatusCode, title: http.StatusText(resp.StatusCode),
		retryAfter: resp.Header.Get("Retry-After")}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		var p struct {
			Title     string `json:"title"`
			Detail    string `json:"detail"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(body, &p) == nil {
			r.detail, r.requestID = p.Detail, p.RequestID
			if p.Title != "" {
				r.title = p.Title
			}
		}
	}
	if r.requestID == "" {
		r.requestID = resp.Header.Get("X-Request-ID")
	}
	if resp.StatusCode == http.StatusUnauthorized {
		r.hint = "Run `strata login` to sign in again."
	}
	return r
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// newKey is a fresh Idempotency-Key (128 random bits).
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type account struct {
	ID        string    `json:"id"`
	Owner     string    `json:"owner"`
	Name      string    `json:"name"`
	Currency  string    `json:"currency"`
	Balance   int64     `json:"balance"`
	Region    string    `json:"region"`
	CreatedAt time.Time `json:"created_at"`
}

func accountRows(as ...account) [][]string {
	rows := make([][]string, 0, len(as))
	for _, a := range as {
		rows = append(rows, []string{a.ID, a.Name, a.Currency, strconv.FormatInt(a.Balance, 10)})
	}
	return rows
}

const accountHeader = "ID\tNAME\tCURRENCY\tBALANCE (minor units)"

func (a *app) accounts(fs *flag.FlagSet) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("accounts: unexpected arguments %q", args)
		}
		var raw json.RawMessage
		if err := a.call(ctx, a.cfg.ledger, http.MethodGet, "/v1/accounts", nil, nil, &raw); err != nil {
			return err
		}
		if a.cfg.output == "json" {
			return printJSON(a.stdout, raw)
		}
		var out struct{ Accounts []account }
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		return table(a.stdout, accountHeader, accountRows(out.Accounts...))
	}
}

func (a *app) openAccount(fs *flag.FlagSet) func(context.Context, []string) error {
	currency := fs.String("currency", "", "ISO 4217 code: EUR, USD, GBP, CHF or JPY (required)")
	name := fs.String("name", "", "a name for the account (required)")
	key := fs.String("idempotency-key", "", "repeat a request safely with the same key (default: a new one)")
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) != 0:
			return usagef("open-account: unexpected arguments %q", args)
		case *currency == "" || *name == "":
			return usagef("open-account: --currency and --name are required")
		}
		k := *key
		if k == "" {
			k = newKey()
		}
		var raw json.RawMessage
		err := a.call(ctx, a.cfg.ledger, http.MethodPost, "/v1/accounts", map[string]string{"currency": *currency, "name": *name},
			http.Header{"Idempotency-Key": {k}}, &raw)
		if err != nil {
			return keyHint(err, k)
		}
		if a.cfg.output == "json" {
			return printJSON(a.stdout, raw)
		}
		var acct account
		if err := json.Unmarshal(raw, &acct); err != nil {
			return err
		}
		return table(a.stdout, accountHeader, accountRows(acct))
	}
}

// keyHint tells how to retry a write without doing it twice.
func keyHint(err error, key string) error {
	if r, ok := err.(*refusal); ok && r.status != http.StatusTooManyRequests && r.status < 500 {
		return err
	}
	return fmt.Errorf("%w\nTo retry without risk of doing it twice, repeat the command with --idempotency-key %s", err, key)
}

type transfer struct {
	ID            string    `json:"id"`
	FromAccountID string    `json:"from_account_id"`
	ToAccountID   string    `json:"to_account_id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Memo          string    `json:"memo"`
	CreatedAt     time.Time `json:"created_at"`
}

func (a *app) transfer(fs *flag.FlagSet) func(context.Context, []string) error {
	from := fs.String("from", "", "account id to debit (required)")
	to := fs.String("to", "", "account id to credit (required)")
	amount := fs.String("amount", "", "amount in minor units, e.g. 1250 for 12.50 EUR (required)")
	currency := fs.String("currency", "", "ISO 4217 code of both accounts (required)")
	memo := fs.String("memo", "", "a note for both parties")
	key := fs.String("idempotency-key", "", "repeat a transfer safely with the same key (default: a new one)")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("transfer: unexpected arguments %q", args)
		}
		if *from == "" || *to == "" || *amount == "" || *currency == "" {
			return usagef("transfer: --from, --to, --amount and --currency are required")
		}
		n, err := strconv.ParseInt(*amount, 10, 64)
		if err != nil || n <= 0 {
			return usagef("transfer: --amount must be a positive whole number of minor units, not %q", *amount)
		}
		k := *key
		if k == "" {
			k = newKey()
		}
		body := map[string]any{"from_account_id": *from, "to_account_id": *to, "amount": n, "currency": *currency}
		if *memo != "" {
			body["memo"] = *memo
		}
		var raw json.RawMessage
		if err := a.call(ctx, a.cfg.ledger, http.MethodPost, "/v1/transfers", body, http.Header{"Idempotency-Key": {k}}, &raw); err != nil {
			return keyHint(err, k)
		}
		if a.cfg.output == "json" {
			return printJSON(a.stdout, raw)
		}
		var tr transfer
		if err := json.Unmarshal(raw, &tr); err != nil {
			return err
		}
		return table(a.stdout, "ID\tFROM\tTO\tAMOUNT\tCURRENCY\tMEMO",
			[][]string{{tr.ID, tr.FromAccountID, tr.ToAccountID, strconv.FormatInt(tr.Amount, 10), tr.Currency, tr.Memo}})
	}
}

func (a *app) activity(fs *flag.FlagSet) func(context.Context, []string) error {
	acct := fs.String("account", "", "account id (required)")
	limit := fs.Int("limit", 0, "events per page, 1-200 (default: the service's, 50)")
	page := fs.String("page", "", "the next-page cursor of a previous answer")
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) != 0:
			return usagef("activity: unexpected arguments %q", args)
		case *acct == "":
			return usagef("activity: --account is required")
		case *limit < 0 || *limit > 200:
			return usagef("activity: --limit must be 1-200")
		}
		q := url.Values{}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		if *page != "" {
			q.Set("page", *page)
		}
		path := "/v1/accounts/" + url.PathEscape(*acct) + "/activity"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var raw json.RawMessage
		if err := a.call(ctx, a.cfg.analytics, http.MethodGet, path, nil, nil, &raw); err != nil {
			return err
		}
		if a.cfg.output == "json" {
			return printJSON(a.stdout, raw)
		}
		var out struct {
			Events []struct {
				Type         string    `json:"type"`
				OccurredAt   time.Time `json:"occurred_at"`
				TransferID   string    `json:"transfer_id"`
				Amount       int64     `json:"amount"`
				Currency     string    `json:"currency"`
				Counterparty string    `json:"counterparty"`
				Direction    string    `json:"direction"`
			} `json:"events"`
			NextPage string `json:"next_page"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		rows := make([][]string, 0, len(out.Events))
		for _, e := range out.Events {
			amount := ""
			if e.Amount != 0 {
				amount = strconv.FormatInt(e.Amount, 10)
			}
			rows = append(rows, []string{e.OccurredAt.Local().Format(time.DateTime), e.Type, e.Direction, amount, e.Currency, e.Counterparty, e.TransferID})
		}
		if err := table(a.stdout, "WHEN\tTYPE\tDIRECTION\tAMOUNT\tCURRENCY\tCOUNTERPARTY\tTRANSFER", rows); err != nil {
			return err
		}
		if out.NextPage != "" {
			fmt.Fprintf(a.stdout, "\nMore: strata activity --account %s --page %s\n", *acct, out.NextPage)
		}
		return nil
	}
}

func (a *app) sessions(fs *flag.FlagSet) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		switch {
		case len(args) == 0:
		case args[0] == "revoke" && len(args) == 2 && args[1] != "":
			if err := a.call(ctx, a.cfg.session, http.MethodDelete, "/v1/sessions/"+url.PathEscape(args[1]), nil, nil, nil); err != nil {
				return err
			}
			if a.cfg.output == "json" {
				return printJSON(a.stdout, map[string]any{"revoked": args[1]})
			}
			fmt.Fprintf(a.stdout, "Session %s ended: its tokens are refused from now on.\n", args[1])
			return nil
		case args[0] == "revoke":
			return usagef("sessions revoke: exactly one session id is required")
		default:
			return usagef("sessions: unknown subcommand %q (sessions, or sessions revoke SID)", args[0])
		}
		var raw json.RawMessage
		if err := a.call(ctx, a.cfg.session, http.MethodGet, "/v1/sessions", nil, nil, &raw); err != nil {
			return err
		}
		if a.cfg.output == "json" {
			return printJSON(a.stdout, raw)
		}
		var out struct {
			Sessions []struct {
				SID        string    `json:"sid"`
				CreatedAt  time.Time `json:"created_at"`
				LastSeenAt time.Time `json:"last_seen_at"`
				ExpiresAt  time.Time `json:"expires_at"`
			} `json:"sessions"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		mine := peekSID(ctx, a)
		rows := make([][]string, 0, len(out.Sessions))
		for _, s := range out.Sessions {
			sid := s.SID
			if sid == mine {
				sid += " (this one)"
			}
			rows = append(rows, []string{sid, s.CreatedAt.Local().Format(time.DateTime), s.LastSeenAt.Local().Format(time.DateTime),
				s.ExpiresAt.Local().Format(time.DateTime)})
		}
		return table(a.stdout, "SID\tCREATED\tLAST SEEN\tEXPIRES", rows)
	}
}

// peekSID is the session id of the stored access token ("" if unknown).
func peekSID(ctx context.Context, a *app) string {
	tok, err := a.accessToken(ctx)
	if err != nil {
		return ""
	}
	return peek(tok).SID
}
