"""The request pipeline, one module per stage: strip → authn → authz → limit → mutate → forward."""
