"""The gateway's HTTP face: the FastAPI app, its routers (API and server-rendered pages), request
guards and the live event streams for tablets and screens.

See docs/architecture.md for the layers."""
