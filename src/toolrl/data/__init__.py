"""Data curation: upstream tool-use datasets -> the project's canonical, validated, split examples.

One module per source (`rlla`, `toolace`, `xlam`, `hammer`, `bfcl`); `schema` holds the canonical
example and its rendered views; `curate.curate(params)` runs the whole stage (see docs/DATA.md).
"""
