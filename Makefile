# `make run`  : set up .venv if needed, then execute assignment.ipynb top to bottom (full mode).
# `make test` : set up .venv if needed, then run the unit tests and the notebook under nbval (quick mode).
# `make bench`: set up .venv if needed, then run the benchmarks and rewrite bench/BENCHMARKS.md.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-stamp

.PHONY: run test unit bench data clean-venv

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m ipykernel install --user --name python3 >/dev/null
	cp requirements.txt $(STAMP)

run: $(STAMP)
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 assignment.ipynb

test: $(STAMP)
	REID_QUICK=1 MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests assignment.ipynb --nbval-lax

unit: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) bench/run_all.py

clean-venv:
	rm -rf $(VENV)
