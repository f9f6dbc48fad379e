# Splitproof -- two commands on a fresh machine (only python3 and make needed):
#   make demo   the whole local canary run on a real Envoy mesh
#   make test   the whole test suite (what CI runs)
#   make test-fast   the inner loop: every test that starts no process (pytest -m "not slow")
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.splitproof-installed

.PHONY: demo test test-fast venv compiler browser prometheus protos lint bench clean

# (Re)create the virtualenv and install the project (+ test extras) whenever pyproject.toml or the C scanner changes.
$(STAMP): pyproject.toml verifier/inputs/_scan.c verifier/inputs/_markup.c verifier/inputs/_line.c | compiler
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP) prometheus
	$(BIN)/canary-setup demo

test: $(STAMP) browser prometheus
	$(BIN)/python -m pytest

# The tests that start no real process (no Envoy, services, Locust, Prometheus, Chromium, commands): seconds, not
# minutes. tests/conftest.py marks the others `slow`; `make test` still runs everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# A C compiler and the Python headers build the records scanner (verifier/inputs/_scan.c), the page counter
# (verifier/inputs/_markup.c) and the record line writer (verifier/inputs/_line.c) at install. Installed when missing
# and we are root with apt-get; otherwise the install still succeeds and all three fall back to Python (same
# results, slower).
compiler:
	@{ command -v cc >/dev/null 2>&1 && $(PYTHON) -c "import os, sysconfig, sys; \
	    sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian gcc and python3-dev for the records scanner"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev >/dev/null; } \
	      || echo "note: could not install a compiler: the records reader will use its regex scanner"; \
	  else echo "note: no C compiler or Python headers: the records reader will use its regex scanner"; fi; }

# Headless Chromium (Debian package) renders the HTML report in tests/test_htmlreport.py. Installed when missing
# and we are root with apt-get (as on CI); otherwise that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium for the HTML report render test"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "note: could not install chromium: the render test will be skipped"; \
	  else echo "note: chromium not installed and not root: the render test will be skipped"; fi; }

# A real Prometheus + promtool (Debian package) for the telemetry tests (tests/test_telemetry_prometheus.py) and
# bench/telemetry_query.py. Installed when missing and we are root with apt-get; otherwise those tests are skipped
# and say why.
prometheus:
	@{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian prometheus for the telemetry tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        prometheus >/dev/null; } \
	      || echo "note: could not install prometheus: the Prometheus telemetry tests will be skipped"; \
	  else echo "note: prometheus not installed and not root: the Prometheus telemetry tests will be skipped"; fi; }

# Regenerate protos/demo_pb2*.py from protos/demo.proto (tests/test_protos.py checks they are current).
protos: $(STAMP)
	$(BIN)/python -m splitproof.protos.generate

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
