"""The catalogues are complete and keep the placeholders of the source (SPEC section 10).

`catalogue_problems()` regenerates the catalogues from a copy of the tree with
the commands of `make messages` (read from the Makefile, so a language added
there is checked too), then lists every problem with the committed ones:
strings the source has and a catalogue lacks, empty or fuzzy entries,
placeholders that differ from the msgid, and what `msgfmt --check` rejects.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.translation import to_locale

ROOT = Path(__file__).resolve().parent.parent

# Never copied: the virtualenv, runtime data and build output at the top, and
# the catalogues anywhere (the copy must show what the source alone produces).
TOP_LEVEL_NOT_COPIED = {
    ".venv", ".git", "data", "staticfiles", "media", "node_modules", ".pytest_cache", ".hypothesis",
}
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.po", "*.pot", "*.mo")


# A small .po reader ----------------------------------------------------------


@dataclass
class Entry:
    line: int
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None


_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+"(.*)"$')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), text)


def read_po(text: str) -> list[Entry]:
    """The active entries of a catalogue; obsolete (#~) entries are not used by gettext."""
    entries: list[Entry] = []
    current: Entry | None = None
    last: tuple[str, int | None] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            continue
        # A comment or msgctxt/msgid after a msgstr begins the next entry.
        starts_entry = line.startswith("#") or line.startswith(("msgctxt ", "msgid "))
        if starts_entry and (current is None or current.msgstr):
            current, last = Entry(line=number), None
            entries.append(current)
        if line.startswith("#"):
            if line.startswith("#,"):
                current.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith('"') and line.endswith('"') and current is not None and last is not None:
            name, index = last
            value = _unescape(line[1:-1])
            if name == "msgstr":
                current.msgstr[index] += value
            else:
                setattr(current, name, getattr(current, name) + value)
            continue
        match = _KEYWORD.match(line)
        if match is None or current is None:
            raise ValueError(f"line {number}: cannot read {raw!r}")
        name, index, value = match[1], match[2], _unescape(match[3])
        if name == "msgstr":
            last = (name, int(index or 0))
            current.msgstr[last[1]] = value
        else:
            last = (name, None)
            setattr(current, name, value)
            if name == "msgid":
                current.line = number
    return entries


def shown(entry: Entry) -> str:
    text = json.dumps(entry.msgid, ensure_ascii=False)
    if entry.msgid_plural is not None:
        text += f" / plural {json.dumps(entry.msgid_plural, ensure_ascii=False)}"
    if entry.msgctxt is not None:
        text += f" (context {json.dumps(entry.msgctxt, ensure_ascii=False)})"
    return text


# Placeholders ----------------------------------------------------------------

# Full printf syntax for strings xgettext flagged as formats; without a flag only
# the unambiguous forms count, so "100% sure" is not read as "% s".
_PRINTF = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)
_PRINTF_PLAIN = re.compile(r"%(?:\((?P<name>\w+)\))?(?P<conv>[sdif%])")
_BRACE = re.compile(r"\{\{|\}\}|\{(?P<field>(?:[A-Za-z_]\w*|\d+)?(?:\.\w+|\[[^\]{}]*\])*(?:![rsa])?(?::[^{}]*)?)\}")
_FORMAT_FLAGS = {"python-format", "javascript-format", "c-format"}


def placeholders(text: str, flags: set[str]) -> tuple[list[str], tuple[tuple[str, ...], tuple[str, ...]]]:
    """The placeholders in text order, and a signature: named ones sorted, positional ones in order.

    Two strings with equal signatures format the same arguments: named
    placeholders may move, positional ones (%s, {}) may not.
    """
    found, named, positional = [], [], []
    printf = _PRINTF if flags & _FORMAT_FLAGS else _PRINTF_PLAIN
    if not {"no-python-format", "no-javascript-format", "no-c-format"} & flags:
        for match in printf.finditer(text):
            if match["conv"] != "%":
                found.append(match[0])
                (positional if match["name"] is None else named).append(match[0])
    if "no-python-brace-format" not in flags:
        for match in _BRACE.finditer(text):
            if match["field"] is not None:
                found.append(match[0])
                (positional if re.match(r"[{][!:}]", match[0]) else named).append(match[0])
    return found, (tuple(sorted(named)), tuple(positional))


def entry_problems(entries: list[Entry], source_language: bool = False) -> list[str]:
    """Problems of the entries themselves, each prefixed with its line number.

    In the source language's catalogue an empty msgstr is no problem: it shows the msgid.
    """
    problems = []
    header = next((entry for entry in entries if entry.is_header), None)
    nplurals = None
    if header is None:
        problems.append("1: the header entry (msgid \"\") is missing")
    else:
        if "fuzzy" in header.flags:
            problems.append(f"{header.line}: the header is fuzzy")
        plural_forms = re.search(r"^Plural-Forms:.*\bnplurals\s*=\s*(\d+)", header.msgstr.get(0, ""), re.M)
        nplurals = int(plural_forms[1]) if plural_forms else None
    for entry in entries:
        if entry.is_header:
            continue
        where = f"{entry.line}: "
        if "fuzzy" in entry.flags:
            problems.append(f"{where}fuzzy: {shown(entry)}")
        if any(text == "" for text in entry.msgstr.values()) or not entry.msgstr:
            if not source_language:
                problems.append(f"{where}untranslated: {shown(entry)}")
            continue
        sources = [("msgid", entry.msgid)]
        if entry.msgid_plural is not None:
            sources.append(("msgid_plural", entry.msgid_plural))
            if nplurals is not None and len(entry.msgstr) != nplurals:
                problems.append(f"{where}{len(entry.msgstr)} plural forms, the header says {nplurals}: {shown(entry)}")
        expected = {placeholders(text, entry.flags)[1] for _, text in sources}
        for index, text in sorted(entry.msgstr.items()):
            found, signature = placeholders(text, entry.flags)
            if signature not in expected:
                name = "msgstr" if entry.msgid_plural is None else f"msgstr[{index}]"
                wanted = " or ".join(
                    f"{source} has {', '.join(placeholders(source_text, entry.flags)[0]) or 'none'}"
                    for source, source_text in sources
                )
                problems.append(
                    f"{where}placeholders differ: {wanted}; {name} has {', '.join(found) or 'none'}: {shown(entry)}"
                )
    return problems


# The checker -------------------------------------------------------------------


def makemessages_commands() -> list[list[str]]:
    """The makemessages arguments of the Makefile's `messages` target."""
    commands, in_target = [], False
    for line in (ROOT / "Makefile").read_text().replace("\\\n", " ").splitlines():
        if not line.startswith("\t"):
            in_target = line.startswith("messages:")
        elif in_target and "manage.py makemessages" in line:
            commands.append(shlex.split(line.split("manage.py", 1)[1]))
    assert commands, "the Makefile has no `messages` target running manage.py makemessages"
    return commands


def _option(arguments: list[str], short: str, long: str) -> list[str]:
    values = []
    for position, argument in enumerate(arguments):
        if argument in (short, long) and position + 1 < len(arguments):
            values.append(arguments[position + 1])
        elif argument.startswith(long + "="):
            values.append(argument.split("=", 1)[1])
    return values


def copy_tree(destination: Path) -> Path:
    """A copy of the project's source, without virtualenv, data or catalogues."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = TOP_LEVEL_NOT_COPIED if Path(directory) == ROOT else set()
        return NOT_COPIED(directory, names) | (top & set(names))

    tree = destination / "tree"
    shutil.copytree(ROOT, tree, ignore=ignore, symlinks=True)
    return tree


def msgfmt_problems(path: Path) -> list[str]:
    result = subprocess.run(
        ["msgfmt", "--check", "-o", os.devnull, str(path)], capture_output=True, text=True, timeout=60
    )
    if result.returncode == 0:
        return []
    lines = [line.replace(f"{path}:", "").strip() for line in result.stderr.splitlines() if line.strip()]
    return [f"msgfmt --check: {line}" for line in lines] or [f"msgfmt --check exited with {result.returncode}"]


def catalogue_problems(tree: Path, committed: Path = ROOT) -> list[str]:
    """Everything wrong with the committed catalogues for the source in `tree`.

    Each problem starts with the catalogue's path, then the line when there
    is one; an empty list means the catalogues are complete.
    """
    assert shutil.which("msgfmt"), "GNU gettext (msgfmt, xgettext) is needed to check the catalogues"
    problems, catalogues = [], set()
    commands = makemessages_commands()
    made_languages = set()
    for arguments in commands:
        languages = _option(arguments, "-l", "--locale")
        made_languages.update(languages)
        for domain in _option(arguments, "-d", "--domain") or ["django"]:
            catalogues.update(Path("locale", language, "LC_MESSAGES", f"{domain}.po") for language in languages)
        result = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=tree, capture_output=True, text=True, timeout=120,
            env={**os.environ, "SECRET_KEY": "catalogue-check", "PYTHONDONTWRITEBYTECODE": "1"},
        )
        if result.returncode != 0:
            problems.append(f"makemessages {shlex.join(arguments)} failed:\n{result.stderr.strip()}")
    for code, _name in settings.LANGUAGES:
        if code != settings.LANGUAGE_CODE and to_locale(code) not in made_languages:
            problems.append(f"Makefile: `make messages` has no -l {to_locale(code)} for {code} in settings.LANGUAGES")

    # The copy has no catalogues of its own: every .po in it was just made.
    regenerated = {path.relative_to(tree): path for path in tree.rglob("*.po")}
    for relative in sorted(catalogues | set(regenerated)):
        path = committed / relative
        if not path.exists():
            if relative in regenerated:
                problems.append(f"{relative}: the catalogue does not exist; run `make messages`")
                problems += [f"{relative}: missing: {shown(entry)}" for entry in _source_entries(regenerated[relative])]
            continue
        try:
            entries = read_po(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            problems.append(f"{relative}: cannot be read: {error}")
            continue
        if relative in regenerated:
            present = {entry.key for entry in entries}
            problems += [
                f"{relative}: missing: {shown(entry)}"
                for entry in _source_entries(regenerated[relative])
                if entry.key not in present
            ]
        source_language = relative.parts[1] == to_locale(settings.LANGUAGE_CODE)
        problems += [f"{relative}:{problem}" for problem in entry_problems(entries, source_language)]
        problems += [f"{relative}: {problem}" for problem in msgfmt_problems(path)]
    return problems


def _source_entries(path: Path) -> list[Entry]:
    return [entry for entry in read_po(path.read_text(encoding="utf-8")) if not entry.is_header]


def _report(problems: list[str]) -> str:
    return (
        f"{len(problems)} problem(s) with the catalogues; run `make messages`, translate, and see "
        "README.md, For translators:\n  " + "\n  ".join(problems)
    )


# Tests -------------------------------------------------------------------------


def test_catalogues_are_complete_and_keep_placeholders(tmp_path):
    problems = catalogue_problems(copy_tree(tmp_path))
    if problems:
        pytest.fail(_report(problems), pytrace=False)


def test_checker_reports_new_source_strings_as_missing(tmp_path):
    tree = copy_tree(tmp_path)
    (tree / "templates" / "_catalogue_probe.html").write_text(
        '{% load i18n %}<p>{% translate "A probe string no catalogue has" %}</p>'
        '<p>{% translate "Probe" context "catalogue check" %}</p>'
    )
    (tree / "static" / "js" / "_catalogue_probe.js").write_text('const probe = gettext("A probe in JavaScript");\n')

    problems = catalogue_problems(tree)

    for language in ("zh_Hans", "da"):
        catalogues = f"locale/{language}/LC_MESSAGES"
        for expected in [
            f'{catalogues}/django.po: missing: "A probe string no catalogue has"',
            f'{catalogues}/django.po: missing: "Probe" (context "catalogue check")',
            f'{catalogues}/djangojs.po: missing: "A probe in JavaScript"',
        ]:
            assert expected in problems, _report(problems)


BROKEN = r'''
#, fuzzy
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=1; plural=0;\n"

msgid "Fine"
msgstr "好"

msgid "Empty"
msgstr ""

#, fuzzy
msgid "Guessed"
msgstr "猜的"

#, python-format
msgid "Hello %(name)s, you have %(count)d new %(what)s"
msgstr "%(what)s：%(count)d，%(name)s"

#, python-format
msgid "Hello %(name)s"
msgstr "你好 %(nom)s"

#, python-format
msgid "%s of %d"
msgstr "%d 中的 %s"

msgid "Welcome {name}"
msgstr "欢迎"

#, python-format
msgid "Revoked %(count)d token."
msgid_plural "Revoked %(count)d tokens."
msgstr[0] "已撤销 %(count)d 个令牌。"

#, python-format
msgid "One conversation"
msgid_plural "%(count)d conversations"
msgstr[0] "%(count)s 个对话"

msgctxt "verb"
msgid "Stop"
msgstr ""
"停"
"止"

msgid "100% sure"
msgstr "百分之百确定"

#, python-format
msgid "%(count)d key"
msgid_plural "%(count)d keys"
msgstr[0] "%(count)d 个密钥"
msgstr[1] "%(count)d 个密钥"
'''


def test_entry_checks_catch_empty_fuzzy_and_wrong_placeholders():
    problems = entry_problems(read_po(BROKEN))

    assert problems == [
        "3: the header is fuzzy",
        '11: untranslated: "Empty"',
        '15: fuzzy: "Guessed"',
        '23: placeholders differ: msgid has %(name)s; msgstr has %(nom)s: "Hello %(name)s"',
        '27: placeholders differ: msgid has %s, %d; msgstr has %d, %s: "%s of %d"',
        '30: placeholders differ: msgid has {name}; msgstr has none: "Welcome {name}"',
        "39: placeholders differ: msgid has none or msgid_plural has %(count)d; msgstr[0] has %(count)s: "
        '"One conversation" / plural "%(count)d conversations"',
        '53: 2 plural forms, the header says 1: "%(count)d key" / plural "%(count)d keys"',
    ]


def test_the_source_languages_catalogue_may_leave_entries_empty():
    # English shows an empty msgstr as its msgid; fuzzy entries and wrong placeholders are problems still.
    everything = entry_problems(read_po(BROKEN))
    assert entry_problems(read_po(BROKEN), source_language=True) == [p for p in everything if "untranslated" not in p]
    assert '11: untranslated: "Empty"' in everything and len(everything) > 2


def test_reader_joins_continued_lines_and_keeps_context():
    stop = next(entry for entry in read_po(BROKEN) if entry.msgid == "Stop")
    assert stop.key == ("verb", "Stop", None)
    assert stop.msgstr == {0: "停止"}


def test_msgfmt_check_failure_is_reported(tmp_path):
    catalogue = tmp_path / "django.po"
    catalogue.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        '#, python-format\nmsgid "%(count)d left"\nmsgstr "%(count)d tilbage %s"\n'
    )
    assert any("msgfmt --check:" in problem for problem in msgfmt_problems(catalogue))
