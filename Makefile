# posguard: the two commands of the README.
#   make demo   set everything up, then run the main job on a generated sample drop
#   make test   set everything up, then run the whole test suite against a real Neo4j
# Everything a fresh machine lacks is installed here (Debian packages, the virtualenv, Maven artifacts).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export POSGUARD_HOME ?= $(CURDIR)/var
DEMO_DROP ?= $(POSGUARD_HOME)/drops/sample
DEMO_OUT ?= $(POSGUARD_HOME)/out
APT_PACKAGES := openjdk-17-jre-headless maven chromium chromium-driver
PYTEST_ARGS ?=
APP_HOST ?= 127.0.0.1
APP_PORT ?= 8050
# Without POSGUARD_TOKEN_KEY the demo tokenizes with the public development key, and says so on every run.
KEYFLAG := $(if $(POSGUARD_TOKEN_KEY),,--insecure-dev-key)

.PHONY: setup system-deps venv neo4j-jars demo test clean stop-neo4j

setup: system-deps venv neo4j-jars

# Debian packages, installed only when missing (as root, or through sudo).
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	ls /usr/lib/jvm 2>/dev/null | grep -qE -- '-(17|21)-' || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BIN)/posguard: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "posguard needs Python >= 3.11 ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,spark]'
	@touch $@

venv: $(BIN)/posguard

# The Neo4j 5.26 server's jars, resolved from Maven Central into ~/.m2 (once).
neo4j-jars: venv
	$(BIN)/python -c 'from graph.server import resolve_classpath; print(f"Neo4j server: {len(resolve_classpath(quiet=False))} jars resolved")'

demo: setup
	$(BIN)/posguard neo4j start $(KEYFLAG)
	$(BIN)/posguard generate --out $(DEMO_DROP) --seed 1 --scale small
	$(BIN)/posguard run $(DEMO_DROP) --out $(DEMO_OUT) $(KEYFLAG)
	@$(BIN)/python -c 'import pandas as pd; a = pd.read_parquet("$(DEMO_OUT)/alerts.parquet"); \
	  print(f"\n{len(a)} alerts in $(DEMO_OUT)/alerts.parquet; the top 15:"); \
	  print(a.sort_values("score", ascending=False).head(15)[["severity", "kind", "entity_type", "entity_id", "summary"]].to_string(index=False))'
	$(BIN)/posguard neo4j status $(KEYFLAG)
	@# A first explorer user, its password generated once and kept readable only by you.
	@login="$(POSGUARD_HOME)/demo-login"; \
	if [ ! -s "$$login" ]; then \
	  pw=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(12))'); \
	  echo "$$pw" | $(BIN)/posguard users add demo --role admin --password-stdin $(KEYFLAG) >/dev/null 2>&1 \
	    || echo "$$pw" | $(BIN)/posguard users reset demo --password-stdin $(KEYFLAG) >/dev/null; \
	  (umask 077; echo "demo $$pw" > "$$login"); \
	fi; \
	echo; echo "explorer: http://$(APP_HOST):$(APP_PORT)/  user demo, password: $$(cut -d' ' -f2 "$$login") (kept in $$login)"; \
	echo "stop it with Ctrl-C; the Neo4j server keeps running (make stop-neo4j)"
	$(BIN)/posguard app --host $(APP_HOST) --port $(APP_PORT) $(KEYFLAG)

stop-neo4j:
	-$(BIN)/posguard neo4j stop

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	-$(BIN)/posguard neo4j stop
	rm -rf $(VENV) var
