# Everything a fresh machine with only Python 3.11+ needs: `make run`, `make test`, `make bench`.
# The first call makes .tools/ (a private uv) and .venv/ (the project and its dev tools,
# exactly as uv.lock pins them); later calls reuse them.

PYTHON ?= python3
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint check bench soak clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==0.13.9"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python "$$(command -v $(PYTHON))"
	touch $@

run: .venv/.synced
	USERCREDITS_SEED_CATALOGUE=catalogue/example.yaml USERCREDITS_DEMO=true .venv/bin/usercredits serve

lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: lint
	.venv/bin/pytest

bench: .venv/.synced
	.venv/bin/python -m bench

# The full-length soak; `make test` runs a shorter one.
soak: .venv/.synced
	USERCREDITS_SOAK_SUBSCRIBERS=500 USERCREDITS_SOAK_SECONDS=60 .venv/bin/pytest -s tests/test_soak.py

clean:
	rm -rf .tools .venv .usercredits-data
