#!/usr/bin/env bash
# Lints each service's OpenAPI document and renders it to one static HTML
# page (Redoc, through Redocly CLI, pinned in package-lock.json) under
# out/api/, with an index. `make api-docs` runs it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root/tools/apidocs"
if [[ ! -x node_modules/.bin/redocly ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
out=$root/out/api
mkdir -p "$out"
services=(auth ledger analytics session)
for s in "${services[@]}"; do
	doc=$root/services/$s/api/openapi.yaml
	if ! log=$(node_modules/.bin/redocly lint --config redocly.yaml "$doc" 2>&1); then
		echo "$log" >&2
		exit 1
	fi
	echo "linted services/$s/api/openapi.yaml"
	node_modules/.bin/redocly build-docs --config redocly.yaml "$doc" -o "$out/$s.html" >/dev/null 2>&1 ||
		node_modules/.bin/redocly build-docs --config redocly.yaml "$doc" -o "$out/$s.html"
done
{
	echo '<!doctype html><meta charset="utf-8"><title>Strata API reference</title>'
	echo '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}</style>'
	echo '<h1>Strata API reference</h1><p>One page per service, rendered from its OpenAPI 3.1 document (services/&lt;name&gt;/api/openapi.yaml), which the service also serves at <code>GET /openapi.json</code>.</p><ul>'
	for s in "${services[@]}"; do
		echo "<li><a href=\"$s.html\">$s</a></li>"
	done
	echo '</ul>'
} >"$out/index.html"
echo "out/api/index.html"
