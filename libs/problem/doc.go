// Package problem writes RFC 9457 problem details (application/problem+json),
// the only error body any Strata service returns. Details meant for
// operators go to the log; a Problem carries only what a client may see.
package problem
