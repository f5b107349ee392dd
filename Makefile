# Switchboard: `make run` serves the app, `make test` runs the suite.
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12+: take the first interpreter that qualifies.
PYTHON ?= $(shell for p in python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: run test bench messages install install-dev compilemessages

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
	$(VENV)/bin/daphne -e tcp:port=$(PORT):interface=$(HOST):backlog=1024 chatapp.asgi:application

test: install-dev compilemessages
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev compilemessages
	$(PY) -m bench $(foreach peer,$(PEER),--peer $(peer))

messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l zh_Hans -l da --ignore '.venv/*' --ignore 'tests/*' --ignore 'bench/*' --no-obsolete
	$(PY) manage.py makemessages -d djangojs -l zh_Hans -l da --ignore '.venv/*' --ignore 'staticfiles/*' --ignore 'tests/*' --ignore 'bench/*' --no-obsolete
