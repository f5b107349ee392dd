"""d. A long conversation page: seeded and query-counted in a child process with the app's settings.

    python -m bench.page --messages 1000      (run with the app's environment)

Seeds two conversations for alice, a long one (`--messages`, alternating
questions and Markdown answers with code, lists, tables and math, rendered
and cached as the chat caches a finished answer) and a short one, then
counts the SQL queries of each page with Django's CaptureQueriesContext
around the test client, in-process, against the same database the server
uses (one warm-up request first, so one-time work is not counted). A fixed
number of queries means: the same count for both lengths. Prints JSON.

The server time is measured from outside (bench/run.py): repeated GETs of
the long page over one kept-alive connection to the idle Daphne.
"""

import argparse
import json
import os
import sys

SHORT_MESSAGES = 20
MODEL = "fake/model@openrouter"

_CODE = {
    "python": "def fib(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
              "print([fib(i) for i in range(10)])",
    "javascript": "const total = items\n  .filter((item) => item.price > 0)\n  .reduce((sum, item) => sum + item.price, 0);\n"
                  "console.log(`Total: ${total.toFixed(2)}`);",
    "bash": "for f in *.log; do\n  gzip -9 \"$f\" && echo \"compressed $f\"\ndone",
    "sql": "SELECT user_id, count(*) AS n\nFROM messages\nWHERE created_at > now() - interval '7 days'\nGROUP BY user_id\n"
           "ORDER BY n DESC\nLIMIT 10;",
}  # fmt: skip


def question(number: int) -> str:
    if number % 4 == 3:
        return f"Question {number}: why does this fail?\n\n```python\nitems = {{}}\nitems.append({number})\n```"
    return f"Question {number}: how would you write a function that does step {number} of the pipeline?"


def answer(number: int) -> str:
    """A model-like answer: prose, a list, a code block; a table or math now and then."""
    language = list(_CODE)[number % len(_CODE)]
    parts = [
        f"## Step {number}\n",
        (
            f"Here is **one way** to do it, with `{language}` and a *short* explanation. "
            "See [the docs](https://docs.python.org/3/) for the details; the idea is to keep the state small "
            "and make every step easy to test on its own.\n"
        ),
        "1. Read the input once.\n2. Keep only what the next step needs.\n3. Write the result, then check it.\n",
        f"```{language}\n{_CODE[language]}\n```\n",
    ]
    if number % 5 == 0:
        parts.append("| step | time | memory |\n|---|---:|---:|\n| read | 12 ms | 3 MB |\n| write | 30 ms | 1 MB |\n")
    if number % 7 == 0:
        parts.append("The cost grows as $O(n \\log n)$, and for the whole run:\n\n$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$\n")
    parts.append("> Tip: measure before you optimise.\n")
    return "\n".join(parts)


def seed(owner, messages: int, title: str):
    from django.db import transaction

    from chatapp.models import Conversation, Message
    from chatapp.rendering import render_markdown

    with transaction.atomic():
        conversation = Conversation.objects.create(owner=owner, title=title, model=MODEL)
        parent = None
        for number in range(messages):
            if number % 2 == 0:
                parent = Message.objects.create(
                    conversation=conversation, parent=parent, role=Message.Role.USER, content=question(number)
                )
                continue
            content = answer(number)
            parent = Message.objects.create(
                conversation=conversation,
                parent=parent,
                role=Message.Role.ASSISTANT,
                status=Message.Status.DONE,
                content=content,
                content_html=render_markdown(content),
                model=MODEL,
                provider="openrouter",
                finish_reason="stop",
                prompt_tokens=120 + number,
                completion_tokens=180,
                cost="0.00042",
                time_to_first_token=0.4,
                duration=3.2,
            )
        conversation.current_leaf = parent
        conversation.save(update_fields=["current_leaf"])
    return conversation


def count_queries(user, conversation) -> tuple[int, int]:
    """SQL queries and bytes of one GET of the conversation page, after a warm-up GET."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    url = conversation.get_absolute_url()
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return len(queries), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--username", default="alice")
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
    import django

    django.setup()
    from accounts.models import User

    user = User.objects.get(username=arguments.username)
    long = seed(user, arguments.messages, f"Bench: {arguments.messages} messages")
    short = seed(user, min(SHORT_MESSAGES, arguments.messages), f"Bench: {SHORT_MESSAGES} messages")
    queries, size = count_queries(user, long)
    queries_short, _size = count_queries(user, short)
    json.dump(
        {
            "conversation": str(long.id),
            "url": long.get_absolute_url(),
            "messages": arguments.messages,
            "queries": queries,
            "short_messages": min(SHORT_MESSAGES, arguments.messages),
            "queries_short": queries_short,
            "bytes": size,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
