# The product's two front doors: `make run` and `make test`.
# Both create their own virtualenv and install the exact versions of requirements.lock (with hashes),
# then the project itself (pyproject.toml). Upgrading a library: README "Upgrading the libraries".
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
YEARS  := 2024 2025 2026
REGION ?= jingdezhen

.PHONY: run test lint clean sample lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The sample years whose collection period `make run` goes through night by night (one night per month
# end, `--as-of`, on the exports as they stood that day: tools/sample/as_of.py) before tonight's night
# on the whole sample, so 征缴进度 draws a curve; README "make run".
PERIOD_YEARS := 2025 2026
EXPORTS := out/.sample-exports

run: $(STAMP)
	@for y in $(YEARS); do \
	  case " $(PERIOD_YEARS) " in *" $$y "*) \
	    dates=$$($(BIN)/python -m tools.sample.as_of --coverage-year $$y --region $(REGION) \
	      --from sample_data/$$y --out $(EXPORTS)/$$y) || exit $$?; \
	    for d in $$dates; do \
	      echo "$$y 年度 数据日期 $$d"; \
	      $(BIN)/medins run --coverage-year $$y --region $(REGION) --out out/ --as-of $$d \
	        --roster "$(EXPORTS)/$$y/$$d/roster*" --payments "$(EXPORTS)/$$y/$$d/payments*" \
	        --subsidy-list "$(EXPORTS)/$$y/$$d/subsidy_list*" > /dev/null || exit $$?; \
	    done;; \
	  esac; \
	  $(BIN)/medins run --coverage-year $$y --region $(REGION) --out out/ \
	    --roster 'sample_data/'$$y'/roster*' --payments 'sample_data/'$$y'/payments*' \
	    --subsidy-list 'sample_data/'$$y'/subsidy_list*' || exit $$?; \
	done

lint: $(STAMP)
	$(BIN)/ruff check pipeline schemas tools tests benchmarks
	$(BIN)/ruff format --check pipeline schemas tools tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -n 2  # two workers (pytest-xdist): a test waits on its parser processes much of the time

sample: $(STAMP)
	@for y in $(YEARS); do \
	  rm -rf sample_data/$$y && $(BIN)/python -m tools.sample --rows 300 --seed $$y --coverage-year $$y --out sample_data/$$y || exit $$?; \
	done

# Re-pin every library to the newest versions the ranges of pyproject.toml allow (a deliberate step:
# then `make test` and the benchmark, README "Upgrading the libraries").
lock:
	$(PYTHON) -m venv /tmp/medins-lock && /tmp/medins-lock/bin/pip install --quiet pip-tools
	/tmp/medins-lock/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --extra test --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) out
