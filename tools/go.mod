module github.com/strata-ref/strata/tools

go 1.26.0

require github.com/apache/cassandra-gocql-driver/v2 v2.1.2

require (
	github.com/strata-ref/strata/libs v0.0.0
	gopkg.in/inf.v0 v0.9.1 // indirect
)

replace github.com/strata-ref/strata/libs => ../libs
