"""The gateway's links to outside systems: the WhatsApp port's gateway side, check-in, the
manager's summary wording, key-fob provisioning over GATT and the chain publisher to HQ.

See docs/architecture.md for the layers."""
