"""`make bench`: Switchboard's speed, always as a ratio against direct access.

One run starts a fake upstream (its own process, bench/upstream.py), the app
under Daphne with production settings, and a load generator in this process,
then measures:

a. the proxy API under realistic load (100 streams of 100 tokens, 20 ms apart);
b. the proxy API at saturation (50 streams of 200 tokens, no delay);
c. the chat over WebSocket (100 conversations), and memory per idle socket;
d. a conversation page of 1,000 messages.

Every figure, its target and whether it was met go to stdout as a table and
to bench/results/latest.json. `--peer litellm` runs a. and b. against LiteLLM's
proxy too, `--peer floor` against a bare relay under Daphne (bench/floor.py:
the least any proxy in one Daphne process adds). Run it as `python -m bench`
(or `make bench`, `make bench PEER="litellm floor"`).
"""
