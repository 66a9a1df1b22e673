package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/strata-ref/strata/libs/openapi"
	"github.com/strata-ref/strata/libs/openapi/openapitest"
)

// endpointPages are the service pages whose endpoint table is generated
// from the service's OpenAPI document.
var endpointPages = map[string]string{
	"docs/ledger.md":         "services/ledger/api/openapi.yaml",
	"docs/analytics.md":      "services/analytics/api/openapi.yaml",
	"docs/authentication.md": "services/auth/api/openapi.yaml",
	"docs/cache-aside.md":    "services/session/api/openapi.yaml",
}

const endMarker = "<!-- end of the generated table -->"

func beginMarker(doc string) string {
	return "<!-- endpoints of " + doc + ", generated: STRATA_UPDATE_DOCS=1 go test ./docs (in tools) -->"
}

// TestEndpointTables fails when a service page's endpoint table differs
// from the one its OpenAPI document gives; STRATA_UPDATE_DOCS=1 rewrites
// the tables instead.
func TestEndpointTables(t *testing.T) {
	root := repoRoot(t)
	update := os.Getenv("STRATA_UPDATE_DOCS") != ""
	for pagePath, docPath := range endpointPages {
		raw, err := os.ReadFile(filepath.Join(root, docPath))
		if err != nil {
			t.Fatal(err)
		}
		d, err := openapi.Load(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := EndpointTable(openapitest.Load(t, d))
		text, err := os.ReadFile(filepath.Join(root, pagePath))
		if err != nil {
			t.Fatal(err)
		}
		page := string(text)
		begin := beginMarker(docPath)
		i := strings.Index(page, begin)
		j := strings.Index(page, endMarker)
		if i < 0 || j < i {
			t.Errorf("%s: no generated endpoint table (%q ... %q)", pagePath, begin, endMarker)
			continue
		}
		got := page[i+len(begin) : j]
		if got == want {
			continue
		}
		if !update {
			t.Errorf("%s: the endpoint table differs from %s; run STRATA_UPDATE_DOCS=1 go test ./docs in tools.\nwant:%s", pagePath, docPath, want)
			continue
		}
		page = page[:i+len(begin)] + want + page[j:]
		if err := os.WriteFile(filepath.Join(root, pagePath), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", pagePath)
	}
}

var methodOrder = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// EndpointTable renders the document's operations as a Markdown table:
// method and path, listener, credentials, summary and documented answers.
func EndpointTable(doc *openapi3.T) string {
	type row struct{ path, method, line string }
	var rows []row
	for path, item := range doc.Paths.Map() {
		listener := "public"
		if v, ok := item.Extensions[openapitest.Listener].(string); ok {
			listener = v
		}
		for method, op := range item.Operations() {
			codes := make([]string, 0, len(op.Responses.Map()))
			for code := range op.Responses.Map() {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			line := fmt.Sprintf("| `%s %s` | %s | %s | %s | %s |", method, path, listener, credentials(doc, op),
				strings.ReplaceAll(op.Summary, "|", `\|`), strings.Join(codes, ", "))
			rows = append(rows, row{path, method, line})
		}
	}
	sort.Slice(rows, func(a, b int) bool {
		if rows[a].path != rows[b].path {
			return rows[a].path < rows[b].path
		}
		return slices.Index(methodOrder, rows[a].method) < slices.Index(methodOrder, rows[b].method)
	})
	var b strings.Builder
	b.WriteString("\n\n| operation | listener | credentials | what it does | answers |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r.line + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// credentials names what an operation requires: an access token, the
// internal listener's client certificate, both, or nothing.
func credentials(doc *openapi3.T, op *openapi3.Operation) string {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	if len(reqs) == 0 {
		return "none"
	}
	names := make([]string, 0, 2)
	for name := range reqs[0] {
		switch name {
		case "bearer":
			names = append(names, "access token")
		case "mtls":
			names = append(names, "mTLS")
		default:
			names = append(names, name)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	return strings.Join(names, " + ")
}
