# One-command set-up: `make demo` runs the tool on the bundled sample data, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

demo: setup
	$(BIN)/medaka-heart analyze sample_data/ -o demo_out --masks-from-truth
	@echo "Results in demo_out/ (summary.csv, one folder per video)"

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_out
