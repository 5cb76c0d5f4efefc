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
up: ## Build the images and start the whole stack; prints the gateway URL
	@echo "make up: not yet built (issue: containers and Compose stack)"; exit 1

.PHONY: down
down: ## Stop the stack and remove its volumes
	@echo "make down: not yet built (issue: containers and Compose stack)"; exit 1

.PHONY: logs
logs: ## Follow the stack's logs
	@echo "make logs: not yet built (issue: containers and Compose stack)"; exit 1

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
lint: ## ruff check, ruff format --check and mypy --strict
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs services

.PHONY: fmt
fmt: ## Format and autofix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: bench
bench: ## Benchmarks (writes bench/results)
	@echo "make bench: not yet built (issue: benchmarks)"; exit 1

.PHONY: k8s-render
k8s-render: ## Render a Kustomize overlay: make k8s-render OVERLAY=prod
	@echo "make k8s-render: not yet built (issue: Kubernetes)"; exit 1
