"""The gRPC edge: servicers, protobuf <-> domain conversion and error mapping."""
