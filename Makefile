# Two entry points (README Quickstart): `make run` and `make test`; both set up .venv first.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup lock run test library fuzz bench clean train train-unet train-detect docs

setup: $(STAMP)

# The venv holds exactly the locked set (requirements.lock, made by `make lock`); pyproject.toml
# keeps ranges for people who install archspec into an environment of their own.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# re-resolve requirements.lock from pyproject.toml (with the test extra) and requirements-dev.in
lock: setup
	$(BIN)/pip-compile -q --allow-unsafe --extra test --extra interop --strip-extras --no-emit-index-url --no-emit-find-links \
		-o requirements.lock pyproject.toml requirements-dev.in

run: setup
	$(BIN)/archspec build specs/resnet18.yaml

test: setup
	$(BIN)/python -m pytest -n 2

# regenerate reports/library.md (a test fails when it is stale)
library: setup
	$(BIN)/archspec report --format markdown > reports/library.md

# the long fuzz run (CI runs a bounded number of cases): 20,000 random cases per fuzz test
fuzz: setup
	FUZZ_EXAMPLES=20000 FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/test_fuzz.py -q

# regenerate the diagrams and the report screenshot under docs/ (needs graphviz; chromium for the screenshot)
docs: setup
	ARCHSPEC=$(BIN)/archspec scripts/make_docs.sh

# the README's Training run: LeNet-5 on scikit-learn's real handwritten digits (>= 97% test accuracy)
train: setup
	$(BIN)/archspec train specs/lenet5.yaml --data digits

# the README's segmentation run: the padded U-Net (64x64 inputs, base 16) on generated shapes (IoU >= 0.9)
train-unet: setup
	$(BIN)/archspec train specs/unet_padded.yaml --data shapes --input 3x64x64 --set base=16 --batch-size 8 --epochs 15

# the README's detection run: the course's 3x3x8 YOLO toy on generated boxes (mAP@0.5 >= 0.7)
train-detect: setup
	$(BIN)/archspec train specs/yolo_grid_toy.yaml --data boxes --epochs 12 --batch-size 16

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
