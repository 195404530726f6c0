"""The gateway's SQLite tables and the queries over them: customers and consent, staff work,
sales, catalogue, door counts, fitting-room requests and the manager's figures.

See docs/architecture.md for the layers."""
