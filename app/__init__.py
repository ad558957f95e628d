"""The HTTP gateway (FastAPI) and the `tunix-tune` CLI: where users and other systems come in."""
