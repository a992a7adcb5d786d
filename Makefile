# One-command set-up: `make demo` (install, train on data/reviews.csv, predict) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch first: the project's range (torch>=2.1,<3) would otherwise let pip pull
# a multi-GB CUDA build on a machine that has no GPU. Set TORCH_SPEC= to skip this step.
TORCH_SPEC ?= torch==2.13.0
MODEL ?= models/reviews

.PHONY: install demo test test-slow lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ -n "$(TORCH_SPEC)" ] && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(BIN)/bce-train data/reviews.csv --output $(MODEL) --force --seed 0
	$(BIN)/bce-predict $(MODEL) "Battery lasts two days and the screen is gorgeous!" \
		"Stopped working after a week, and support never answered."
	$(BIN)/bce-predict $(MODEL) --format tsv < data/new_reviews.txt

# The quick suite (about two minutes on two cores, one pytest worker per core); test-slow runs the long end-to-end runs (CI runs both).
test: install
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist worksteal

test-slow: install
	$(BIN)/python -m pytest -q -m slow -n auto --dist worksteal

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) models/*/ .pytest_cache
