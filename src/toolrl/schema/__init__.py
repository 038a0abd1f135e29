"""The params.yaml schema, one module per section (a DVC stage depends on its own section's module).

`toolrl.config` assembles them into `Params` and loads params files; import the classes from there.
"""
