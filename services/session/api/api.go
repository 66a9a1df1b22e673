// Package api holds the session's public contract: its OpenAPI 3.1 document
// (openapi.yaml), served as JSON at GET /openapi.json.
package api

import (
	_ "embed"

	"github.com/strata-ref/strata/libs/openapi"
)

//go:embed openapi.yaml
var yaml []byte

// Document is the session's OpenAPI document.
var Document = openapi.MustLoad(yaml)
