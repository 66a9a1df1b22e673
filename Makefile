# Strata: one target per thing a person does. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help
NATIVE := deploy/native
MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: run ## Bring the whole system up natively, drive it past saturation (ramp scenario, ~1 min), print the report path.
	@bash $(NATIVE)/demo.sh

.PHONY: test
test: ## Run every module's tests (unit, integration on real stores, end-to-end); starts the stack if needed.
	@bash $(NATIVE)/test-all.sh

SCENARIO ?= ramp
DURATION ?= 60s
ONLY ?=
.PHONY: loadtest
loadtest: ## Run one load scenario against `make run` (SCENARIO=baseline|ramp|overload|breaker|cache|retry-storm|hot-account, DURATION=60s, ONLY=ledger|analytics|session for one service's traffic).
	@bash $(NATIVE)/services.sh seed 40
	@cd loadtest && go run ./cmd/strata-load -users 40 -duration $(DURATION) $(if $(ONLY),-only $(ONLY)) $(SCENARIO)

.PHONY: tradeoffs
tradeoffs: ## Measure the database trade-off table (latency, throughput, consistency probes) and write docs/tradeoffs.md.
	@cd loadtest && STRATA_TRADEOFFS_DOC=$(CURDIR)/docs/tradeoffs.md go test -count=1 -timeout 20m -run '^TestTradeoffs$$' -v ./internal/tradeoffs

.PHONY: bench
bench: ## Run every side-by-side benchmark (service vs pgbench, redis-benchmark, raw gocql; telemetry on/off) and print one table.
	@bash tools/bench.sh

.PHONY: security
security: stack-up ## Negative security suite against the real system (OWASP ASVS 5.0 / API Top 10 2023 ids), then every fuzz target for 10 s.
	@bash tools/security.sh

.PHONY: chaos
chaos: $(if $(filter 1,$(HA)),chaos-ha,run) ## Fault drills on the running system under load (HA=1: on the HA topology); prints fault | requests | errors | data lost | time to recover.
	@if [ "$(HA)" != 1 ]; then bash $(NATIVE)/services.sh seed 20 && cd loadtest && go run ./cmd/strata-load chaos; fi

.PHONY: run
run: stack-up certs-fresh ## Start the data stack, the four services and the web console (https://127.0.0.1:8445) in the background; returns when all are ready.
	@bash $(NATIVE)/services.sh start
	@bash $(NATIVE)/services.sh status

.PHONY: run-ha
run-ha: ## Start the high-availability topology natively (replicas of every store and service; docs/high-availability.md).
	@bash $(NATIVE)/ha.sh up

.PHONY: stop-ha
stop-ha: ## Stop the high-availability topology.
	@bash $(NATIVE)/ha.sh down

.PHONY: chaos-ha
chaos-ha: run-ha ## Fault drills on the HA topology under load: a Cassandra node, a replica of each service, Postgres and Redis failovers.
	@bash $(NATIVE)/ha.sh services seed 20
	@source $(NATIVE)/ha.env && cd loadtest && go run ./cmd/strata-load chaos -ha

.PHONY: stop
stop: ## Stop the services and the data stack, and the HA topology if it runs.
	@bash $(NATIVE)/services.sh stop
	@bash $(NATIVE)/stack.sh down
	@if bash $(NATIVE)/ha.sh status 2>/dev/null | grep -q ' running '; then bash $(NATIVE)/ha.sh down; fi

.PHONY: status
status: ## Show what is running.
	@bash $(NATIVE)/stack.sh status
	@bash $(NATIVE)/services.sh status

.PHONY: certs
certs: ## Create the dev CA (once) and renew every workload and store certificate in .stack/certs.
	@go run ./tools/cmd/certs -dir .stack/certs

# Renew only when a workload certificate is missing or expires within an hour.
.PHONY: certs-fresh
certs-fresh:
	@if ! openssl x509 -checkend 3600 -noout -in .stack/certs/ledger.pem >/dev/null 2>&1; then $(MAKE) --no-print-directory certs; fi

.PHONY: pictures
pictures: ## Draw the architecture, HA, cache-aside, outbox and idempotency diagrams to docs/img/*.svg (mermaid-cli in headless Chromium).
	@bash tools/docs/mermaid.sh draw

.PHONY: screenshots
screenshots: ## Regenerate docs/img's pictures of the running system (the console, a transfer's trace, the newest report) in headless Chromium.
	@bash tools/docs/screenshots.sh

.PHONY: stack-up
stack-up: ## Start Postgres, Redis and Cassandra (installs what is missing; a no-op when all are up).
	@bash $(NATIVE)/stack.sh up

.PHONY: stack-down
stack-down: ## Stop the data stack.
	@bash $(NATIVE)/stack.sh down

# Lint tools, pinned and installed into bin/ by the Makefile itself.
STATICCHECK_VERSION := v0.8.2
GOIMPORTS_VERSION := v0.52.0
BIN := $(CURDIR)/bin
$(BIN)/staticcheck-$(STATICCHECK_VERSION):
	@GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) && mv $(BIN)/staticcheck $@
$(BIN)/goimports-$(GOIMPORTS_VERSION):
	@GOBIN=$(BIN) go install golang.org/x/tools/cmd/goimports@$(GOIMPORTS_VERSION) && mv $(BIN)/goimports $@

.PHONY: lint
lint: $(BIN)/staticcheck-$(STATICCHECK_VERSION) $(BIN)/goimports-$(GOIMPORTS_VERSION) ## No tracked ignored or >1 MB files; gofmt, goimports, vet, staticcheck, govulncheck; tidy; house rules; no secrets; every docs diagram renders.
	@bad=$$(git ls-files -ci --exclude-standard); if [ -n "$$bad" ]; then echo "tracked files that .gitignore ignores (git rm --cached them):"; echo "$$bad"; exit 1; fi
	@bad=$$(git ls-files -z | xargs -0 stat -c '%s %n' 2>/dev/null | awk '$$1 > 1048576'); if [ -n "$$bad" ]; then echo "tracked files over 1 MB:"; echo "$$bad"; exit 1; fi
	@bad=$$(gofmt -l $(MODULES)); if [ -n "$$bad" ]; then echo "not gofmt-formatted:"; echo "$$bad"; exit 1; fi
	@bad=$$($(BIN)/goimports-$(GOIMPORTS_VERSION) -local github.com/strata-ref/strata -l $(MODULES)); if [ -n "$$bad" ]; then echo "imports not goimports-grouped (std, third party, strata):"; echo "$$bad"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@for m in $(MODULES); do (cd $$m && $(BIN)/staticcheck-$(STATICCHECK_VERSION) ./...) || exit 1; done
	@bash tools/vulncheck.sh $(MODULES)
	@cd tools && go test -count=1 -run '^(TestImportRules|TestHouseRuleCatches|TestOneVersion)$$' ./deploycheck
	@before=$$(cat $(addsuffix /go.mod,$(MODULES)) $(wildcard $(addsuffix /go.sum,$(MODULES))) | md5sum); \
	for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy) || exit 1; done; \
	after=$$(cat $(addsuffix /go.mod,$(MODULES)) $(wildcard $(addsuffix /go.sum,$(MODULES))) | md5sum); \
	if [ "$$before" != "$$after" ]; then echo "go mod tidy changed go.mod/go.sum: commit the tidied files"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && GOWORK=off go build -o /dev/null ./...) || exit 1; done
	@bash tools/check-secrets.sh
	@bash tools/docs/mermaid.sh check
	@echo "lint ok"

.PHONY: cli
cli: ## Build the strata command line (login, token, accounts, transfer, activity, sessions) to out/strata; see docs/api.md.
	@cd tools && go build -o ../out/strata ./cmd/strata && echo "out/strata"

.PHONY: contract
contract: stack-up ## Boot the services on free ports and run schemathesis (pinned, in .venv/contract) against each OpenAPI document with real tokens; reports in out/contract.
	@cd tools && STRATA_CONTRACT=1 go test -count=1 -timeout 20m -v -run '^TestSchemathesis$$' ./contract

.PHONY: api-docs
api-docs: ## Lint each service's OpenAPI document and render it to a static HTML reference (Redoc) in out/api/index.html.
	@bash tools/apidocs/build.sh

.PHONY: compose-test
compose-test: ## Bring docker-compose.yml up for real (Docker Engine and Compose v2 installed if missing; local stand-ins of the third-party images, deploy/ci) and drive it end to end from the host; then down -v. HA=1: the profile ha, and the HA drills in containers.
	@STRATA_COMPOSE_HA=$(if $(filter 1,$(HA)),1,0) bash deploy/ci/compose-test.sh
