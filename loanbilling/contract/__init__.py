"""Protobuf <-> domain values shared by the api and the events layers.

Imports the domain and the generated stubs only: the servicers and the broker
relay put the same event on the wire, so they share one conversion.
"""
