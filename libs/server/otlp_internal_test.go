package server

import (
	"testing"

	"github.com/strata-ref/strata/libs/config"
)

// Spans (routes, user ids, timings) must not cross the network in clear in
// production; a sidecar collector on loopback is the one exception.
func TestProductionRefusesPlaintextOTLP(t *testing.T) {
	tests := []struct {
		env      config.Environment
		endpoint string
		insecure bool
		ok       bool
	}{
		{config.Production, "http://otel-collector.observability.svc:4317", false, false},
		{config.Production, "otel-collector.observability.svc:4317", true, false},
		{config.Production, "https://otel-collector.observability.svc:4317", true, false},
		{config.Production, "https://otel-collector.observability.svc:4317", false, true},
		{config.Production, "otel-collector.observability.svc:4317", false, true},
		{config.Production, "http://127.0.0.1:4317", false, true},
		{config.Production, "localhost:4317", true, true},
		{config.Production, "", true, true},
		{config.Dev, "http://otel-collector:4317", true, true},
	}
	for _, tt := range tests {
		err := checkOTLP(Env{Env: tt.env, OTLPEndpoint: tt.endpoint, OTLPInsecure: tt.insecure})
		if (err == nil) != tt.ok {
			t.Errorf("%s %s insecure=%v: err = %v, want ok=%v", tt.env, tt.endpoint, tt.insecure, err, tt.ok)
		}
	}
}
