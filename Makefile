# One entry point for users and CI. `make test` and `make demo` set everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := -c requirements/constraints.txt
STAMP := $(VENV)/.installed

.PHONY: setup test test-dist test-slow demo demo-seg demo-v2 model-zoo benchmark lint clean

setup: $(STAMP)

$(STAMP): requirements/*.txt setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(CONSTRAINTS) torch==2.13.0
	$(PIP) install -q $(CONSTRAINTS) -r requirements/build.txt
	# mmcv 2.1.0 has no wheel for this torch: build its CPU ops (about 18 min on 2 cores, then cached by pip).
	MMCV_WITH_OPS=1 MAX_JOBS=2 $(PIP) install $(CONSTRAINTS) --no-build-isolation mmcv==2.1.0
	$(PIP) install -q $(CONSTRAINTS) -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q $(CONSTRAINTS) --no-build-isolation --no-deps -e .
	touch $(STAMP)

# Default suite: everything not marked slow or dist (kept under 15 minutes on 2 cores).
test: setup
	$(PY) -m pytest -q tests -m "not slow and not dist"

# Two-process DDP runs on CPU (gloo) through tools/dist_train.sh and torchrun.
test-dist: setup
	$(PY) -m pytest -q tests -m dist

test-slow: setup
	$(PY) -m pytest -q tests -m slow

DET_DEMO := configs/demo/mask_rcnn_swin_t_shapes.py
SEG_DEMO := configs/demo/upernet_swin_t_shapes.py
V2_DEMO := configs/demo/mask_rcnn_swinv2_t_shapes.py

# Detection demo: generate the shapes set if missing, train, evaluate, draw predictions.
demo: setup
	$(PY) tools/misc/backbone_shapes.py
	$(PY) tools/train.py $(DET_DEMO)
	$(PY) tools/test.py $(DET_DEMO) work_dirs/mask_rcnn_swin_t_shapes --show-dir predictions

demo-seg: setup
	$(PY) tools/train.py $(SEG_DEMO)
	$(PY) tools/test.py $(SEG_DEMO) work_dirs/upernet_swin_t_shapes --show-dir predictions

# The detection demo with a SwinV2 backbone.
demo-v2: setup
	$(PY) tools/misc/backbone_shapes.py
	$(PY) tools/train.py $(V2_DEMO)
	$(PY) tools/test.py $(V2_DEMO) work_dirs/mask_rcnn_swinv2_t_shapes

# Regenerate docs/model_zoo.md after changing configs or docs/demo_results.json
# (parameter/FLOP counts of unchanged models are reused; drop --reuse-counts to recount all).
model-zoo: setup
	$(PY) tools/misc/model_zoo.py --reuse-counts

# The figures of docs/benchmark.md (about 25 minutes on 2 CPU cores; add --device cuda on a GPU).
benchmark: setup
	$(PY) tools/analysis_tools/benchmark.py peers --repeats 7 --model-flops --json work_dirs/benchmark/benchmark.json \
		--plot work_dirs/benchmark/scaling.png

lint: setup
	$(VENV)/bin/ruff check mmswin tools tests configs
	$(VENV)/bin/ruff format --check mmswin tools tests configs

clean:
	rm -rf $(VENV) work_dirs
