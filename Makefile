# One-command set-up: `make demo` runs the tool on the bundled sample data, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean chromium napari-libs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# The sample videos are measured on their truth masks (listed in the manifest) until a
# default segmentation model ships; then evaluated against their ground truth.
demo: setup
	$(BIN)/medaka-heart analyze --manifest sample_data/manifest.csv -o demo_out/model --group-by setting --save-masks
	$(BIN)/medaka-heart evaluate demo_out/model sample_data -o demo_out/model_evaluation
	$(BIN)/medaka-heart analyze --manifest sample_data/truth_masks.csv -o demo_out/truth_masks --group-by setting
	$(BIN)/medaka-heart evaluate demo_out/truth_masks sample_data -o demo_out/truth_masks_evaluation
	@echo "Results in demo_out/model/ (summary.csv, report.html, one folder per video) and"
	@echo "demo_out/model_evaluation/; the same on the truth masks in demo_out/truth_masks*/"

test: setup chromium napari-libs lint
	$(BIN)/python -m pytest

# Lint and type checks as configured in pyproject.toml (run by `make test`, so by CI).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The report tests render report.html in headless Chromium (Debian packages chromium and
# chromium-driver): installed here when missing and run as root (as CI does), else a hint.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing chromium and chromium-driver for the report tests"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "chromium not found: install the Debian packages chromium and chromium-driver" \
		     "(the report tests skip without it, and fail when CI is set)" >&2; \
	fi

# The napari tests run the plugin in a headless viewer: Qt's offscreen platform, with OpenGL
# from a virtual X server (Xvfb, which the tests start; Mesa's software renderer), and the
# shared libraries the Qt wheels link to. Installed here when missing and run as root (as CI
# does), else a hint.
NAPARI_DEBS := xvfb libgl1 libglx-mesa0 libgl1-mesa-dri libegl1 libxkbcommon0 libfontconfig1 \
	libglib2.0-0 libdbus-1-3 fonts-dejavu-core
NAPARI_LIBS := libGL.so.1 libEGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libglib-2.0.so.0 \
	libdbus-1.so.3 swrast_dri.so
napari-libs:
	@missing=""; command -v Xvfb >/dev/null 2>&1 || missing="Xvfb"; \
	found="$$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; \
	          ls /usr/lib/*/dri /usr/lib/dri 2>/dev/null)"; \
	for lib in $(NAPARI_LIBS); do \
		echo "$$found" | grep -q "$$lib" || missing="$$missing $$lib"; \
	done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Xvfb and Qt's libraries for the napari tests (missing:$$missing)"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NAPARI_DEBS); \
	else \
		echo "missing for the napari tests:$$missing; install the Debian packages" \
		     "$(NAPARI_DEBS) (the viewer tests skip without them, and fail when CI is set)" >&2; \
	fi

clean:
	rm -rf $(VENV) demo_out
