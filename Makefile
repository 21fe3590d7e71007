# The two commands of the README. Each creates .venv and installs what it needs on first use.
#   make start [ARGS="--source clip.mp4 --sink window"]   install the runtime, run vcam start
#   make test                                            install everything, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch: an unpinned `torch` would pull several GB of CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: start test lint e2e bench quality

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

# The style the code keeps: ruff's lint and format, mypy on both packages (pyproject.toml).
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check vcam distill tests benchmarks
	$(VENV)/bin/ruff format --check vcam distill tests benchmarks
	$(VENV)/bin/mypy

# Real v4l2loopback in a QEMU guest, both driver generations (Debian packages; root for apt-get),
# and the shipped INT8 models on an emulated AVX2 CPU: the same picture as on this one and as
# recorded for other CPU classes (on the clip's frames too when ../shared is there), and the
# suite's INT8 tests there too, so a VNNI host also checks what an AVX2 host's `make test` would.
CLIP := ../shared/data/video/vtest.avi
INT8_TESTS := int8 or luma8 or qat or quantiz or shipped_weights
e2e: $(VENV)/.dev
	bash tests/e2e/install-deps.sh
	$(PY) benchmarks/int8_parity.py --emulate Haswell --check $$([ -f $(CLIP) ] && echo --clip $(CLIP))
	qemu-x86_64 -cpu Haswell $(PY) -m pytest -p no:cacheprovider -k "$(INT8_TESTS)" tests
	bash tests/e2e/run.sh --driver 0.12
	bash tests/e2e/run.sh --driver 0.15

# One report per CPU class (benchmarks/bench-avx2.md, ...): the tier chosen for 720p30 on this CPU.
bench: $(VENV)/.runtime
	$(VENV)/bin/vcam bench --tier $$($(PY) -c 'from vcam import tiers; from vcam.options import DEFAULTS as d; print(tiers.choose(d.width, d.height, d.fps).tier)') \
		--out benchmarks/bench-$$($(PY) -c 'from vcam.cpu import cpu_info; print(cpu_info().slug)').md

# The teacher's self-ensemble (8 passes) is built from its weights, not shipped: the report only.
quality: $(VENV)/.dev
	mkdir -p build
	$(VENV)/bin/distill export weights/teacher.pt build/teacher-x8.onnx --name sharpcam-teacher-x8 --self-ensemble
	$(VENV)/bin/distill evaluate --model teacher=weights/teacher.onnx --model teacher-x8=build/teacher-x8.onnx --model student-fast=weights/student-fast.onnx --model student=weights/student.onnx \
		--model student-fp32=weights/student-fp32.onnx --model student-no-distillation=weights/student-nokd-fp32.onnx --model student-hq=weights/student-hq.onnx --model student-hq-no-distillation=weights/student-hq-nokd-fp32.onnx \
		--video-dir ../shared/data/video --bench-frames 30 --out benchmarks/quality
