"""The web app (`tech-ner serve`): a page and a JSON API on the shared inference layer. `create_app` builds it."""
