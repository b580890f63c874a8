"""The billing rules as plain values and functions: no database, no gRPC.

See ../shared/spec/billing-rules.md; every function here cites the rule it
implements.
"""
