"""From the store broker to the staff: the MQTT shell, the ingest core that runs the engines on
each window, the fleet of nodes, the RFID glue and the config pushed to nodes.

See docs/architecture.md for the layers."""
