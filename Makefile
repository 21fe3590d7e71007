# The two commands of the README. Each creates .venv and installs what it needs on first use.
#   make start [ARGS="--source clip.mp4 --sink window"]   install the runtime, run vcam start
#   make test                                            install everything, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch: an unpinned `torch` would pull several GB of CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: start test e2e bench quality

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[train,dev]'
	touch $@ $(VENV)/.runtime

start: $(VENV)/.runtime
	$(VENV)/bin/vcam start $(ARGS)

test: $(VENV)/.dev
	$(PY) -m pytest

# Real v4l2loopback in a QEMU guest (Debian packages; needs root for apt-get).
e2e: $(VENV)/.dev
	bash tests/e2e/install-deps.sh
	bash tests/e2e/run.sh

bench: $(VENV)/.runtime
	$(VENV)/bin/vcam bench --out benchmarks/bench.md

quality: $(VENV)/.dev
	$(VENV)/bin/distill evaluate --model teacher=weights/teacher.onnx --model student=weights/student.onnx \
		--model student-fp32=weights/student-fp32.onnx --model student-no-distillation=weights/student-nokd-fp32.onnx --model student-hq=weights/student-hq.onnx \
		--bench-frames 30 --out benchmarks/quality
