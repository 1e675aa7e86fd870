# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv (torch first, from the CPU wheel, so that nothing pulls a multi-GB CUDA build).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
# torchcodec (audio decoding for `datasets`) must match torch: 0.13 is the CPU build for torch 2.13 (0.14+ are CUDA builds)
TORCHCODEC_SPEC ?= torchcodec==0.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
CONSTRAINTS := $(VENV)/constraints.txt
SYSTEM_TOOLS := espeak-ng ffmpeg flite text2wave sox
# Data the corpus script (training/make_demo_corpus.py) reads: sentences and festival voices.
SYSTEM_FILES := /usr/share/games/fortunes/fortunes /usr/share/games/fortunes/wisdom \
	/usr/share/festival/voices/english/kal_diphone /usr/share/festival/voices/us/cmu_us_slt_arctic_hts
SYSTEM_PACKAGES := espeak-ng ffmpeg flite festival festvox-kallpc16k festvox-us-slt-hts sox fortunes-min fortunes
# Test-only: the browser that drives the app's tests (tests/test_app.py skips them, saying why, where it is missing).
TEST_SYSTEM_TOOLS := chromium chromedriver
TEST_SYSTEM_PACKAGES := chromium chromium-driver
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install system-deps test-system-deps demo test quality format clean

install: system-deps $(STAMP)

system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	for f in $(SYSTEM_FILES); do test -e $$f || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "Missing system tools:$$missing. Run: sudo apt-get install -y $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

# Never fails: without root or apt the browser tests are skipped with the reason.
test-system-deps:
	@missing=""; for t in $(TEST_SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing test system packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_SYSTEM_PACKAGES) >/dev/null) \
	      || echo "Could not install $(TEST_SYSTEM_PACKAGES): the browser tests of the app will be skipped."; \
	  else \
	    echo "Missing$$missing: the browser tests of the app will be skipped. Run: sudo apt-get install -y $(TEST_SYSTEM_PACKAGES)"; \
	  fi; \
	fi

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	printf '%s\n' "$(TORCH_SPEC)" "$(TORCHCODEC_SPEC)" > $(CONSTRAINTS)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[train,eval,app,test,dev]"
	$(PIP) install -q -c $(CONSTRAINTS) --no-deps "resemblyzer>=0.1.4"
	touch $@

demo: install
	$(PY) examples/zero_shot_tts.py --output_dir demo_output

test: install test-system-deps
	$(PY) -m pytest -q

quality: install
	$(VENV)/bin/ruff check src training examples benchmarks tests setup.py
	$(VENV)/bin/ruff format --check src training examples benchmarks tests setup.py

format: install
	$(VENV)/bin/ruff check --fix src training examples benchmarks tests setup.py
	$(VENV)/bin/ruff format src training examples benchmarks tests setup.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache demo_output
