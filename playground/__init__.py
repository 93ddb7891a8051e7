"""FLUX.1 Kontext playground: one request, many hosted providers, compared side by side."""
