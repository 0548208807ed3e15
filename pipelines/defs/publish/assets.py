"""Published dataset: disclosure-controlled tables and a versioned release folder."""


import dagster as dg

PUBLISH_KEYS: list[dg.AssetKey] = []
