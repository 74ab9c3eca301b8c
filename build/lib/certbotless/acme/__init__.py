"""ACME: account, orders, HTTP-01 token store and responder."""
