package analytics

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const id1 = "0b7e4c3a-6a51-4c0e-9d5e-3f1f3c1f4a01"

func ledgerTransfer() LedgerEvent {
	return LedgerEvent{EventID: id1, Type: TypeTransferPosted, OccurredAt: now.Add(-time.Hour), TransferID: "t1",
		FromAccountID: "a1", ToAccountID: "a2", Amount: 250, Currency: "EUR", FromOwner: "alice", ToOwner: "bob"}
}

func TestPlanLedgerTransferWritesBothAccountsAndOneRollup(t *testing.T) {
	w, err := PlanLedger([]LedgerEvent{ledgerTransfer(), ledgerTransfer()}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Rows) != 2 || len(w.Rollups) != 1 {
		t.Fatalf("rows %d, rollups %d; want 2 and 1 (the duplicate collapses)", len(w.Rows), len(w.Rollups))
	}
	d, c := w.Rows[0], w.Rows[1]
	if d.AccountID != "a1" || d.Direction != "debit" || d.Counterparty != "a2" || d.Owner != "alice" ||
		c.AccountID != "a2" || c.Direction != "credit" || c.Counterparty != "a1" || c.Owner != "bob" {
		t.Fatalf("rows %+v", w.Rows)
	}
	if d.Type != TypeTransferPosted || d.EventID != id1 || c.EventID != id1 {
		t.Fatalf("type/id %+v", w.Rows)
	}
	if r := w.Rollups[0]; r.TransferID != "t1" || r.Amount != 250 || !r.Day.Equal(Day(now)) {
		t.Fatalf("rollup %+v", r)
	}
}

func TestPlanLedgerRejects(t *testing.T) {
	for name, mut := range map[string]func(*LedgerEvent){
		"unknown type":          func(e *LedgerEvent) { e.Type = "transfer.reversed" },
		"same account":          func(e *LedgerEvent) { e.ToAccountID = e.FromAccountID },
		"zero amount":           func(e *LedgerEvent) { e.Amount = 0 },
		"amount over the limit": func(e *LedgerEvent) { e.Amount = MaxAmount + 1 },
		"missing owner":         func(e *LedgerEvent) { e.ToOwner = "" },
		"bad currency":          func(e *LedgerEvent) { e.Currency = "EURO" },
		"uuid in braces": func(e *LedgerEvent) {
			e.EventID = "{" + id1 + "}"
		},
		"older than 30 days": func(e *LedgerEvent) { e.OccurredAt = now.Add(-31 * 24 * time.Hour) },
		"future":             func(e *LedgerEvent) { e.OccurredAt = now.Add(10 * time.Minute) },
		"stray account_id":   func(e *LedgerEvent) { e.AccountID = "a3" },
	} {
		t.Run(name, func(t *testing.T) {
			e := ledgerTransfer()
			mut(&e)
			_, err := PlanLedger([]LedgerEvent{e}, now)
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || ve.Index != 0 {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestPlanClient(t *testing.T) {
	good := ClientEvent{EventID: strings.ToUpper(id1), Type: "account.viewed", OccurredAt: now, AccountID: "a1"}
	w, err := PlanClient([]ClientEvent{good}, now)
	if err != nil {
		t.Fatal(err)
	}
	if w.Rows[0].EventID != id1 || w.Rows[0].Owner != "" || len(w.Rollups) != 0 {
		t.Fatalf("plan %+v (ids are canonicalised; clients never set owners or rollups)", w)
	}
	for name, c := range map[string]struct {
		mut   func(*ClientEvent)
		field string
	}{
		"ledger type":       {func(e *ClientEvent) { e.Type = TypeTransferPosted }, "type"},
		"older than 7 days": {func(e *ClientEvent) { e.OccurredAt = now.Add(-8 * 24 * time.Hour) }, "occurred_at"},
		"attribute key":     {func(e *ClientEvent) { e.Attributes = map[string]string{"Bad Key": "v"} }, "attributes"},
		"invalid utf-8":     {func(e *ClientEvent) { e.Attributes = map[string]string{"k": "\xff"} }, "attributes"},
		"long account id":   {func(e *ClientEvent) { e.AccountID = strings.Repeat("a", 65) }, "account_id"},
	} {
		t.Run(name, func(t *testing.T) {
			e := good
			c.mut(&e)
			_, err := PlanClient([]ClientEvent{e}, now)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Fatalf("err = %v, want a %s error", err, c.field)
			}
		})
	}
	if _, err := PlanClient(make([]ClientEvent, MaxClientBatch+1), now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized batch: %v", err)
	}
}

func TestCursorIsBoundToItsAccount(t *testing.T) {
	p := Position{Day: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), State: []byte{1, 2, 3}}
	c := encodeCursor("a1", p)
	got, err := decodeCursor("a1", c)
	if err != nil || !got.Day.Equal(p.Day) || string(got.State) != string(p.State) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"!!", c[:len(c)-3], encodeCursor("a2", p), strings.Repeat("A", maxCursorBytes+1)} {
		if _, err := decodeCursor("a1", bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("cursor %q accepted", bad)
		}
	}
	if encodeCursor("a1", Position{}) != "" {
		t.Fatal("the end of a listing must be an empty cursor")
	}
}
