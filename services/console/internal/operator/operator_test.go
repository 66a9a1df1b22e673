package operator

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads Prometheus text as a scrape would.
func parse(t *testing.T, at time.Time, text string) reading {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return reading{at: at, families: fams}
}

const before = `# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="200",le="0.01"} 10
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="200",le="0.1"} 10
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="200",le="+Inf"} 10
http_server_request_duration_seconds_sum{listener="public",route="/v1/x",method="GET",code="200"} 0.05
http_server_request_duration_seconds_count{listener="public",route="/v1/x",method="GET",code="200"} 10
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="503",le="0.01"} 0
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="503",le="0.1"} 0
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="503",le="+Inf"} 0
http_server_request_duration_seconds_sum{listener="public",route="/v1/x",method="GET",code="503"} 0
http_server_request_duration_seconds_count{listener="public",route="/v1/x",method="GET",code="503"} 0
# TYPE strata_shed_total counter
strata_shed_total{listener="public",reason="limit"} 5
# TYPE strata_breaker_state gauge
strata_breaker_state{dependency="session"} 0
# TYPE strata_session_cache_requests_total counter
strata_session_cache_requests_total{result="hit"} 10
strata_session_cache_requests_total{result="miss"} 10
`

// after: one second later, 100 more 200s (50 under 10 ms, 50 under
// 100 ms), 4 503s, 20 shed, the breaker open, 9 hits and 1 miss.
const after = `# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="200",le="0.01"} 60
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="200",le="0.1"} 110
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="200",le="+Inf"} 110
http_server_request_duration_seconds_sum{listener="public",route="/v1/x",method="GET",code="200"} 3
http_server_request_duration_seconds_count{listener="public",route="/v1/x",method="GET",code="200"} 110
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="503",le="0.01"} 4
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="503",le="0.1"} 4
http_server_request_duration_seconds_bucket{listener="public",route="/v1/x",method="GET",code="503",le="+Inf"} 4
http_server_request_duration_seconds_sum{listener="public",route="/v1/x",method="GET",code="503"} 0.004
http_server_request_duration_seconds_count{listener="public",route="/v1/x",method="GET",code="503"} 4
# TYPE strata_shed_total counter
strata_shed_total{listener="public",reason="limit"} 25
# TYPE strata_limiter_limit gauge
strata_limiter_limit{listener="public"} 12
# TYPE strata_breaker_state gauge
strata_breaker_state{dependency="session"} 2
# TYPE strata_session_cache_requests_total counter
strata_session_cache_requests_total{result="hit"} 19
strata_session_cache_requests_total{result="miss"} 11
# TYPE strata_cassandra_operation_duration_seconds histogram
strata_cassandra_operation_duration_seconds_bucket{operation="write",consistency="QUORUM",outcome="error",le="+Inf"} 3
strata_cassandra_operation_duration_seconds_sum{operation="write",consistency="QUORUM",outcome="error"} 0.3
strata_cassandra_operation_duration_seconds_count{operation="write",consistency="QUORUM",outcome="error"} 3
`

func TestSummarizeRatesFromTwoReadings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var row Row
	summarize(&row, parse(t, t0.Add(time.Second), after), parse(t, t0, before), true)
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 0.01 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("2xx/s", row.OK, 100)
	near("5xx/s", row.ServerErr, 4)
	near("429/s", row.Shed, 20)
	near("limit", row.Limit, 12)
	// 104 requests in the second: 54 under 10 ms, 50 between 10 and 100 ms.
	// p50 is the 52nd: in the first bucket, 52/54 of the way to 10 ms.
	near("p50 ms", row.P50, 10*52.0/54)
	// p99 is the 102.96th: in the second bucket, (102.96-54)/50 of 10..100 ms.
	near("p99 ms", row.P99, 10+90*(102.96-54)/50)
	if len(row.Breakers) != 1 || row.Breakers[0].State != "open" {
		t.Errorf("breakers %+v", row.Breakers)
	}
	near("cache hit ratio", row.CacheHitRatio, 0.9)
	if len(row.Cassandra) != 1 || row.Cassandra[0].Consistency != "QUORUM" || row.Cassandra[0].Total != 3 {
		t.Errorf("cassandra %+v", row.Cassandra)
	}
}

func TestSummarizeFirstReadingHasNoRates(t *testing.T) {
	var row Row
	summarize(&row, parse(t, time.Unix(1000, 0), after), reading{}, false)
	if row.OK != 0 || !math.IsNaN(row.P50) || !math.IsNaN(row.CacheHitRatio) || row.Limit != 12 {
		t.Errorf("first reading: %+v", row)
	}
}
