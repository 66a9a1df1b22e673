package scenario

import (
	"strings"
	"testing"
)

// Only narrows a scenario's traffic to one service and keeps its shape
// (copies, hot account) and its schedule.
func TestOnlyNarrowsTheMix(t *testing.T) {
	ov, err := Only(Specs["overload"], "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if ov.Mix.Event != 0 || ov.Mix.Session != 0 || ov.Mix.Transfer == 0 || ov.Mix.Read == 0 {
		t.Errorf("ledger-only mix %+v sends traffic elsewhere or misses the ledger's", ov.Mix)
	}
	if ov.Name != "overload" || !strings.Contains(ov.Doc, "ledger traffic only") || ov.Steps == nil {
		t.Errorf("spec lost its name, schedule or says nothing of the narrowing: %q %q", ov.Name, ov.Doc)
	}
	if Specs["overload"].Mix != DefaultMix {
		t.Error("Only changed the registered spec")
	}
	rs, err := Only(Specs["retry-storm"], "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if rs.Mix.Copies != 3 {
		t.Errorf("retry-storm copies = %d after narrowing, want 3", rs.Mix.Copies)
	}
	for svc, m := range OneService {
		n := 0
		for _, share := range []float64{m.Transfer + m.Read, m.Event, m.Session} {
			if share > 0 {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: mix %+v reaches %d services", svc, m, n)
		}
	}
	if _, err := Only(Specs["overload"], "auth"); err == nil || !strings.Contains(err.Error(), "analytics, ledger, session") {
		t.Errorf("auth: err = %v, want a refusal naming the choices", err)
	}
}
