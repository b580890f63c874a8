"""Use cases: plain values in, domain results out, one transaction each."""
