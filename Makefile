# Gatehouse: every command a developer or CI runs. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV ?= uv
PYTEST := $(UV) run --frozen pytest
OVERLAY ?= dev

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: up
up: ## Build the images and start the whole stack; prints the gateway's and the mail catcher's URLs
	@scripts/dev-secrets.sh
	docker compose up -d --build --wait
	@echo "Gatehouse is up. Gateway: http://127.0.0.1:$${GATEWAY_PORT:-8000}  API docs: http://127.0.0.1:$${GATEWAY_PORT:-8000}/docs"
	@echo "Emails the stack sends (MailDev): http://127.0.0.1:$${MAILER_PORT:-1080}"

.PHONY: down
down: ## Stop the stack and remove its volumes
	docker compose down --volumes --remove-orphans

.PHONY: logs
logs: ## Follow the stack's logs
	docker compose logs --follow --tail=100

.PHONY: rotate-keys
rotate-keys: ## Add a new signing key (the old one stays published) and restart auth
	@scripts/dev-secrets.sh rotate
	docker compose up -d --no-deps --force-recreate --wait auth

.PHONY: create-admin
create-admin: ## Create an administrator in the running stack: make create-admin EMAIL=you@example.com
	@test -n "$(EMAIL)" || { echo "usage: make create-admin EMAIL=you@example.com" >&2; exit 2; }
	docker compose exec auth python -m gatehouse_auth.cli.admin create-admin "$(EMAIL)"

.PHONY: test
test: lint ## Lint, then every test of the repo (datastores come from testcontainers)
	$(PYTEST) libs services tests

.PHONY: test-common
test-common: ## Tests of libs/common and the shared fixtures
	$(PYTEST) libs

.PHONY: test-auth
test-auth: ## Tests of the auth service
	$(PYTEST) services/auth

.PHONY: test-users
test-users: ## Tests of the users service
	$(PYTEST) services/users

.PHONY: test-gateway
test-gateway: ## Tests of the gateway
	$(PYTEST) services/gateway

.PHONY: test-e2e
test-e2e: ## End-to-end tests against the Compose stack
	$(PYTEST) tests/e2e

.PHONY: lint
lint: ## ruff, ruff format --check, mypy --strict (code and tests), import contracts, promtool check rules
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs services tests infra/monitoring
	$(UV) run --frozen lint-imports
	promtool check rules infra/monitoring/prometheus/*.rules.yml

.PHONY: fmt
fmt: ## Format and autofix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: monitoring
monitoring: ## Regenerate the dashboards' JSON and the PrometheusRule from infra/monitoring
	$(UV) run --frozen python infra/monitoring/generate.py

.PHONY: bench
bench: ## Benchmarks of the stack on loopback (writes bench/results; see docs/performance.md)
	UV="$(UV)" bench/run.sh

.PHONY: chaos
chaos: ## Chaos run: the stack under load with one fault every 40 s (writes bench/results/chaos.json, docs/resilience.md; ~12 min)
	@if [ -f ../shared/docker/images.env ] && [ -z "$${POSTGRES_IMAGE:-}" ]; then set -a; . ../shared/docker/images.env; set +a; fi; \
	timeout --signal=TERM --kill-after=60 900 $(UV) run --frozen python bench/chaos.py

.PHONY: k8s-render
k8s-render: ## Render a Kustomize overlay: make k8s-render OVERLAY=prod
	@if [ "$(OVERLAY)" = dev ]; then UV="$(UV)" infra/k8s/overlays/dev/generate-secrets.sh; fi
	@$(UV) run --frozen kubectl kustomize infra/k8s/overlays/$(OVERLAY)

.PHONY: test-k8s
test-k8s: ## Render, schema-validate and policy-check every Kubernetes overlay
	$(PYTEST) tests/k8s
