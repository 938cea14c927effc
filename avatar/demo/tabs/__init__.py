"""One module per tab; each has ``build(service) -> <Tab>`` and wires its own events."""
