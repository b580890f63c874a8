"""Persistence: tables, the database engine, repositories and migrations."""
