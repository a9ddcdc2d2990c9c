# Everything a fresh machine with only Python 3.11+ needs: `make run`, `make test`, `make bench`.
# The first call makes .tools/ (a private uv) and .venv/ (the project and its dev tools,
# exactly as uv.lock pins them, Node.js among them); later calls reuse them. `make run` and
# `make test` build GraphiQL's assets (clients/graphiql, as its package-lock.json pins them,
# bundled into usercredits/server/graphiql/assets) when they are missing or stale. `make test`
# also installs the client kit's packages (clients/js, as package-lock.json pins them) and,
# when it is missing, Debian's Chromium for the browser test.

PYTHON ?= python3
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint check bench soak clean browser graphiql

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==0.13.9"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python "$$(command -v $(PYTHON))"
	touch $@

run: .venv/.synced graphiql
	USERCREDITS_SEED_CATALOGUE=catalogue/example.yaml USERCREDITS_DEMO=true .venv/bin/usercredits serve

KIT := clients/js
$(KIT)/node_modules/.package-lock.json: $(KIT)/package-lock.json .venv/.synced
	cd $(KIT) && PATH="$(CURDIR)/.venv/bin:$$PATH" npm ci --no-audit --no-fund

GRAPHIQL := clients/graphiql
GRAPHIQL_ASSETS := usercredits/server/graphiql/assets
$(GRAPHIQL)/node_modules/.package-lock.json: $(GRAPHIQL)/package-lock.json .venv/.synced
	cd $(GRAPHIQL) && PATH="$(CURDIR)/.venv/bin:$$PATH" npm ci --no-audit --no-fund

$(GRAPHIQL_ASSETS)/.built: $(GRAPHIQL)/node_modules/.package-lock.json $(GRAPHIQL)/build.mjs $(wildcard $(GRAPHIQL)/src/*)
	cd $(GRAPHIQL) && PATH="$(CURDIR)/.venv/bin:$$PATH" npm run --silent build
	touch $@

graphiql: $(GRAPHIQL_ASSETS)/.built

# The browser test drives Debian's Chromium (no browser download reaches these machines),
# or the browser USERCREDITS_CHROMIUM names.
browser:
	@[ -n "$$USERCREDITS_CHROMIUM" ] || command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# One pytest worker per core (pytest-xdist), each with its own database server.
test: lint browser $(KIT)/node_modules/.package-lock.json graphiql
	.venv/bin/pytest -n auto --dist worksteal

bench: .venv/.synced
	.venv/bin/python -m bench

# The full-length soak; `make test` runs a shorter one.
soak: .venv/.synced
	USERCREDITS_SOAK_SUBSCRIBERS=500 USERCREDITS_SOAK_SECONDS=60 .venv/bin/pytest -s tests/test_soak.py

clean:
	rm -rf .tools .venv .usercredits-data $(GRAPHIQL)/node_modules $(GRAPHIQL_ASSETS)
