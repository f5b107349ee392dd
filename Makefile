# Switchboard: `make run` serves the app, `make test` runs the suite.
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12+: take the first interpreter that qualifies.
PYTHON ?= $(shell for p in python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: run test bench messages install install-dev compilemessages vendor-katex

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

compilemessages: $(VENV)/.installed
	$(PY) manage.py compilemessages --ignore '.venv' --ignore 'bench/.peer-venv' -v 0

run: install compilemessages
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py collectstatic --no-input -v 0
	@# Twisted's endpoint syntax wants the colons of an IPv6 address (HOST=::1) escaped.
	$(VENV)/bin/daphne -e 'tcp:port=$(PORT):interface=$(subst :,\:,$(HOST)):backlog=1024' chatapp.asgi:application

test: install-dev compilemessages
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev compilemessages
	$(PY) -m bench $(foreach peer,$(PEER),--peer $(peer))

messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l en -l zh_Hans -l da --ignore '.venv/*' --ignore 'tests/*' --ignore 'bench/*' --no-obsolete
	$(PY) manage.py makemessages -d djangojs -l en -l zh_Hans -l da --ignore '.venv/*' --ignore 'staticfiles/*' --ignore 'static/vendor/*' --ignore 'tests/*' --ignore 'bench/*' --no-obsolete

# KaTeX typesets math in the browser; its files are committed under
# static/vendor/katex (no CDN). This refreshes them from the npm registry:
# the script, the stylesheet and the woff2 fonts, the stylesheet pointing at
# woff2 alone (every browser that runs the app reads it).
KATEX_VERSION ?= 0.16.47
vendor-katex:
	rm -rf $(VENV)/katex && mkdir -p $(VENV)/katex
	cd $(VENV)/katex && npm pack -q katex@$(KATEX_VERSION) && tar xzf katex-$(KATEX_VERSION).tgz
	rm -rf static/vendor/katex && mkdir -p static/vendor/katex/fonts
	cp $(VENV)/katex/package/dist/katex.min.js $(VENV)/katex/package/LICENSE static/vendor/katex/
	cp $(VENV)/katex/package/dist/fonts/*.woff2 static/vendor/katex/fonts/
	sed -E 's/,url\(fonts\/[A-Za-z0-9_-]+\.woff\) format\("woff"\),url\(fonts\/[A-Za-z0-9_-]+\.ttf\) format\("truetype"\)//g' \
		$(VENV)/katex/package/dist/katex.min.css > static/vendor/katex/katex.min.css
