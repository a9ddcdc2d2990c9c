"""Benchmarks of the credits service: `make bench` (or `python -m bench`).

They answer one question per scenario: how far is the service from the floor the database
sets for the same work? Each scenario runs for a bounded time against a real wire-protocol
server (the embedded SecantusDB, or `USERCREDITS_MONGODB_URI`) and the service in its own
process, and `bench/results.md` compares every figure with its baseline and its goal.
"""
