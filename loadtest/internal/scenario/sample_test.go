package scenario

import "testing"

func TestTopologyListsEveryReplica(t *testing.T) {
	one := Topology(1, 8441)
	if len(one) != 4 || one[1] != (Service{Name: "ledger", Internal: "https://127.0.0.1:9442"}) || one[1].Label() != "ledger" {
		t.Fatalf("single: %+v", one)
	}
	two := Topology(2, 8541)
	if len(two) != 8 || two[3] != (Service{Name: "ledger", Internal: "https://127.0.0.1:9552", Replica: "b"}) || two[3].Label() != "ledger-b" {
		t.Fatalf("replicas: %+v", two)
	}
	named := NameReplicas([]Service{{Name: "ledger", Internal: "x"}, {Name: "auth", Internal: "y"}, {Name: "ledger", Internal: "z"}})
	if named[0].Label() != "ledger-a" || named[1].Label() != "auth" || named[2].Label() != "ledger-b" {
		t.Fatalf("NameReplicas: %+v", named)
	}
}
