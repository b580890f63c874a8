"""The outbox after commit: numbering events, fanning them out to streams, relaying them."""
