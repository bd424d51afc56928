# Two commands do all the set-up: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
export STREAMER_MODEL_MIRROR ?= $(if $(wildcard $(SHARED)/models),$(SHARED)/models,)
export STREAMER_DATA ?= $(if $(wildcard $(SHARED)/data),$(SHARED)/data,)
DEMO_OUT ?= out/demo

.PHONY: all venv models system demo test test-cv4 bench soak mutate clean

all: demo

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

# Fetch and verify the nets, then time them on each installed backend once per machine, so
# `inference.backend: auto` runs the fastest here (streamer/inference/choice.py).
models: venv
	$(BIN)/python models/fetch.py
	$(BIN)/python run.py models --tune-if-needed

# Debian packages the tests drive for real (broker, RTSP server, Xvfb, Chromium).
system:
	bash scripts/install-system-deps.sh

demo: models
	$(BIN)/python scripts/demo.py --out $(DEMO_OUT)

# CI runs this with CI=true (.ci/run): then a missing real resource (shared data, broker,
# GStreamer, Xvfb, Chromium...) FAILS its tests instead of skipping them (tests/conftest.py), so
# `system` must install everything the suite drives.
test: models system
	$(BIN)/python -m pytest -q tests
	$(MAKE) test-cv4

# The model-loading tests on the other OpenCV major (4.x, which still reads Caffe).
$(VENV)-cv4/.installed: requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)-cv4
	$(VENV)-cv4/bin/pip install -q --upgrade pip
	grep -v '^opencv-python' requirements.txt > $(VENV)-cv4/requirements-cv4.txt
	$(VENV)-cv4/bin/pip install -q -r $(VENV)-cv4/requirements-cv4.txt -r requirements-dev.txt "opencv-python==4.14.0.94"
	touch $@

test-cv4: models $(VENV)-cv4/.installed
	$(VENV)-cv4/bin/python -m pytest -q -m models tests

bench: models
	$(BIN)/python run.py bench

# Mutation testing of the per-frame core (track, events, counting, align, attributes) with
# mutmut; not in CI (about an hour on 2 cores). MODULES="track events" runs a subset.
# Report: out/mutate/report.md; the figures are in the README's Tests section.
mutate: models
	$(BIN)/pip install -q "mutmut==3.8.1"
	bash scripts/mutate.sh $(MODULES)

soak: models
	$(BIN)/python scripts/soak.py --minutes $${SOAK_MINUTES:-10}

clean:
	rm -rf $(VENV) $(VENV)-cv4 out .pytest_cache
