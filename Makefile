# The product's two front doors: `make run` and `make test`.
# Both create their own virtualenv and install everything from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
YEARS  := 2024 2025 2026
REGION ?= jingdezhen

.PHONY: run test clean sample

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@for y in $(YEARS); do \
	  $(BIN)/medins run --coverage-year $$y --region $(REGION) --out out/ || exit $$?; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest -q

sample: $(STAMP)
	@for y in $(YEARS); do \
	  rm -rf sample_data/$$y && $(BIN)/python -m tools.sample --rows 300 --seed $$y --coverage-year $$y --out sample_data/$$y || exit $$?; \
	done

clean:
	rm -rf $(VENV) out
