"""HTTP handlers of the introspector, one module per resource."""
