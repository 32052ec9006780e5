# k3sprof developer tasks. Everything that records needs root: `sudo make <target>`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
OUT   ?= reports/demo

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: ## Install OS packages, mount tracefs, link headers, create .venv (root, idempotent)
	@bash scripts/setup.sh

demo: setup ## The main job: record a control-plane-style startup, analyze it, write reports/demo/demo.html
	$(VENV)/bin/k3sprof demo -o $(OUT)

test: setup lint docs-check ## Lint, the rendered figures, the whole test suite (unit + integration with real BPF; root), then test-kernels, then lab-test
	$(PY) -m pytest -q tests --ignore=tests/kernels --ignore=tests/lab
	$(MAKE) --no-print-directory test-kernels
	$(MAKE) --no-print-directory lab-test

test-kernels: setup ## Kernel matrix in QEMU VMs: Debian 6.1 + 6.12 (doctor, strace witness, modules, demo) and a systemd boot (root; ~8 min under TCG; K3SPROF_SKIP_KERNELS=1 skips locally)
	$(PY) -m pytest -v -p no:cacheprovider tests/kernels

lab-test: setup ## The Vagrant lab end to end: single + compare with a stand-in k3s, on a Debian box built here, libvirt/QEMU TCG inside a private netns (root; ~20 min under TCG; part of make test)
	@bash scripts/lab-setup.sh
	$(PY) -m pytest -v -p no:cacheprovider tests/lab

test-unit: ## Unit tests only (no root needed once .venv exists)
	$(PY) -m pytest -q tests/unit

lint: ## ruff + mypy (strict on tracer/)
	$(VENV)/bin/ruff check tracer tests bench
	$(VENV)/bin/mypy

bench: setup ## Benchmarks (overhead, throughput, attach, analysis scale, dataset, stacks, sched, whatif on the demo): writes bench/runs/<date>.json
	$(PY) -m bench.run

docs: ## Render the tables of measured figures in README.md and docs/ from the newest bench/runs/*.json
	$(PY) -m bench.render

docs-check: ## Fail if a rendered table in README.md or docs/ differs from the newest results file
	$(PY) -m bench.render --check

clean: ## Remove generated reports and caches (keeps .venv)
	rm -rf reports/*.html reports/demo .pytest_cache .mypy_cache .ruff_cache

.PHONY: help setup demo test test-kernels lab-test test-unit lint bench docs docs-check clean
