module github.com/strata-ref/strata/loadtest

go 1.26.0

replace github.com/strata-ref/strata/libs => ../libs

require github.com/strata-ref/strata/libs v0.0.0-00010101000000-000000000000

require github.com/spiffe/go-spiffe/v2 v2.9.0 // indirect
