"""The built-in masking strategies, grouped by kind; `masking.catalog.REGISTRY` lists them all."""
