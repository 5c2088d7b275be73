"""Queries and side effects behind the routers (plain async functions over a psycopg connection)."""
