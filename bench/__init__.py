"""The loanbilling benchmark: `python -m bench` (or `make bench`).

It starts `loanbilling serve` on a PostgreSQL database it seeds, drives it from
separate client processes, and reports per workload calls/s, p50/p99 latency,
errors and the ratio to grpc.health.v1.Health/Check measured against the same
server in the same run. See docs/benchmarks.md.
"""
