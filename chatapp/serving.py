"""What a process served by Daphne does at its start, and only then (not when a test or a tool imports the app).

- Answers a stopped server left streaming are marked interrupted (SPEC:
  "on the next start"; chatapp.generation).
- Twisted stops parsing request bodies as forms. Daphne hands the raw body
  to the application, and Django parses forms itself; Twisted's own pass
  (on by default for every POST with a Content-Type) reads the whole body
  into `request.args`, which nobody reads, running a multipart upload (an
  imported conversation file) through the email package, and parses the
  Content-Type of every POST with an email message object. That last part
  alone was ~5% of the proxy API's time per request in the benchmark.
- Listens for tokens and keys that another process says changed
  (providers.api_auth: its memory of them must not outlive a revocation).
"""

import sys
from pathlib import Path


def served_by_daphne() -> bool:
    """`daphne ...`, or `python -m daphne ...` (which runs daphne/__main__.py)."""
    program = Path(sys.argv[0])
    return "daphne" in (program.name, program.parent.name)


def start() -> None:
    from twisted.internet import reactor

    from chatapp.generation import interrupt_orphans_at_start
    from providers.api_auth import listen_for_forgetting

    leave_forms_to_django()
    interrupt_orphans_at_start()
    reactor.callLater(0, listen_for_forgetting)  # once the loop runs


def leave_forms_to_django() -> None:
    from daphne import http_protocol

    daphne_request = http_protocol.WebRequest
    if getattr(daphne_request, "parses_forms", True) is False:
        return  # already done (the module imported twice)

    class WebRequest(daphne_request):
        """Daphne's request, with Twisted's public switch for form parsing off."""

        parses_forms = False

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs, parsePOSTFormSubmission=False)

    # Daphne's HTTP factory looks this name up for every connection it builds.
    http_protocol.WebRequest = WebRequest
