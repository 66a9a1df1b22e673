#!/usr/bin/env bash
# mermaid.sh — the diagrams of README.md and docs/, drawn by mermaid-cli in
# Debian's headless Chromium (the browser a page's reader uses, so a diagram
# that GitHub cannot render fails here too).
#
#   mermaid.sh check   render every ```mermaid block into a temporary
#                      folder; exit 1 naming the page of any that fails
#   mermaid.sh draw    render the diagrams of the pages in PICTURES to
#                      docs/img/<page>-<n>.svg (what `make pictures` runs)
#
# mermaid-cli comes from npm at the version in package-lock.json (npm ci,
# without puppeteer's own browser download, which this machine cannot
# fetch); Chromium from Debian.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MM=$HERE/mermaid
PICTURES=(architecture high-availability cache-aside outbox idempotency)

log() { echo "[mermaid] $*" >&2; }

setup() {
  if [[ ! -x /usr/bin/chromium ]]; then
    log "installing Debian's chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
  fi
  if [[ ! -x $MM/node_modules/.bin/mmdc ]] || [[ $MM/package-lock.json -nt $MM/node_modules/.package-lock.json ]]; then
    log "npm ci (mermaid-cli)"
    (cd "$MM" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

# render PAGE OUTDIR: every diagram of PAGE as OUTDIR/<page>-<n>.svg.
render() {
  local page=$1 out=$2 name
  name=$(basename "$page" .md)
  "$MM/node_modules/.bin/mmdc" -q -p "$MM/puppeteer.json" -i "$page" -o "$out/$name.md" >"$out/$name.log" 2>&1
}

case ${1:-check} in
check)
  setup
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  failed=0 n=0
  while IFS= read -r page; do
    n=$((n + 1))
    if ! render "$page" "$tmp"; then
      log "FAIL: a diagram in ${page#"$ROOT"/} does not render:"
      grep -m3 -i 'error' "$tmp/$(basename "$page" .md).log" >&2 || true
      failed=1
    fi
  done < <(grep -l '^```mermaid' "$ROOT/README.md" "$ROOT"/docs/*.md "$ROOT"/docs/*/*.md 2>/dev/null)
  ((n > 0)) || { log "no diagrams found"; exit 1; }
  ((failed == 0)) || exit 1
  log "the diagrams of $n pages render"
  ;;
draw)
  setup
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$ROOT/docs/img"
  for p in "${PICTURES[@]}"; do
    render "$ROOT/docs/$p.md" "$tmp" || { cat "$tmp/$p.log" >&2; exit 1; }
    for svg in "$tmp/$p"-*.svg; do
      cp "$svg" "$ROOT/docs/img/"
      log "docs/img/$(basename "$svg")"
    done
  done
  ;;
*)
  sed -n '/^#   mermaid.sh/,/^#$/s/^#   //p' "${BASH_SOURCE[0]}" >&2
  exit 2
  ;;
esac
