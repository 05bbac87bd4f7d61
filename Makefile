# `make run`  : set up .venv if needed, then execute assignment.ipynb top to bottom (full mode), stamp it
#               (reid/record.py: which cell sources and recorded runs it ran), write answers.md from the
#               run's saved answers (reid/answers.py) and pack the submission from the saved file
#               (reid/submission.py: only when the saved notebook is this run).
# `make test` : set up .venv if needed, then run the unit tests and the notebook under nbval (quick mode).
# `make bench`: set up .venv if needed, then run the benchmarks and rewrite bench/BENCHMARKS.md.
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-stamp

.PHONY: run test unit bench data clean-venv

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 \
	    | { grep -v "is ignored: it is neither" || true; }
	cp requirements.txt $(STAMP)

run: $(STAMP)
	REID_PACKED_AFTER=1 $(PY) -m jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 assignment.ipynb
	$(PY) -m reid.record stamp assignment.ipynb
	$(PY) -m reid.answers --out answers.md
	$(PY) -m reid.submission submit assignment.ipynb $${REID_RUNS:-runs}/full

# The notebook under test reads (or builds) its data in runs/test-data and trains from scratch
# in runs/quick, so a student's data/ and full-mode checkpoints are never touched. Whatever the
# machine: no bfloat16 (REID_CPU_BF16=0: float32 on every CPU; tests that need a precision force it),
# and a temporary folder with a long path, so no test depends on where a long path breaks a line (the
# previous run's is removed first, outside the tests' time: pytest would otherwise spend seconds on it).
BASETEMP := /tmp/reid-tests/a-long-temporary-folder-name-so-that-every-path-a-test-prints-wraps-as-it-would-on-any-other-machine-of-ours
test: $(STAMP)
	rm -rf runs/quick $(BASETEMP)
	mkdir -p $(dir $(BASETEMP))
	REID_QUICK=1 REID_DATA=runs/test-data REID_RUNS=runs REID_CPU_BF16=0 MPLBACKEND=Agg \
	    $(PY) -m pytest -q -p no:cacheprovider --basetemp=$(BASETEMP) tests assignment.ipynb --nbval-lax

unit: $(STAMP)
	REID_CPU_BF16=0 MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) -m bench.run_all

clean-venv:
	rm -rf $(VENV)
