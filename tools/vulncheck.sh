#!/usr/bin/env bash
# vulncheck.sh MODULE_DIR... — govulncheck every module against the Go
# vulnerability database, offline.
#
# The database is built from the golang.org/x/vulndb module (its data/osv
# holds every report as OSV JSON; its cmd/indexdb writes the database
# layout govulncheck reads), fetched through the Go module proxy like any
# dependency, so the check needs no network access beyond the proxy. Bump
# VULNDB to a newer pseudo-version to pick up newer reports.
#
# Exit status: 1 when code calls a vulnerable symbol of a dependency (fix:
# bump the module to the fixed version named). Findings in the standard
# library are printed with the Go release that fixes them but do not fail:
# they are fixed by upgrading the Go toolchain (here and in the Dockerfiles'
# golang image), not by a change to the tree.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
VULN=v1.9.0
VULNDB=v0.0.0-20261105234957-e22db6528018
bin=$PWD/bin
db=$bin/vulndb-$VULNDB
gvc=$bin/govulncheck-$VULN
[ -x "$gvc" ] || { GOBIN=$bin go install golang.org/x/vuln/cmd/govulncheck@$VULN && mv "$bin/govulncheck" "$gvc"; }
if [ ! -f "$db/index/db.json" ]; then
  src=$(go mod download -json golang.org/x/vulndb@$VULNDB | jq -r .Dir)
  rm -rf "$db.tmp"
  (cd /tmp && go run golang.org/x/vulndb/cmd/indexdb@$VULNDB -vulns "$src/data/osv" -out "$db.tmp")
  mv "$db.tmp" "$db"
fi
# One line per called vulnerable symbol: module, OSV id, fixed version.
called='select(.finding != null and .finding.trace[0].function != null)
  | .finding | "\(.trace[0].module) \(.osv) fixed in \(.fixed_version // "no release")"'
fail=0
stdall=""
for m in "$@"; do
  out=$(cd "$m" && "$gvc" -db "file://$db" -format json ./...) || { echo "govulncheck failed in $m"; exit 1; }
  found=$(jq -r "$called" <<<"$out" | sort -u)
  deps=$(grep -vE '^(stdlib|toolchain) ' <<<"$found" || true)
  std=$(grep -E '^(stdlib|toolchain) ' <<<"$found" || true)
  if [ -n "$deps" ]; then
    echo "$m calls vulnerable code in its dependencies:"
    sed 's/^/  /' <<<"$deps"
    fail=1
  fi
  stdall+="$std"$'\n'
done
std=$(grep -v '^$' <<<"$stdall" | sort -u || true)
if [ -n "$std" ]; then
  echo "warning: the standard library of $(go env GOVERSION) has known vulnerabilities that the code reaches (upgrade Go):"
  sed 's/^/  /' <<<"$std"
fi
exit $fail
