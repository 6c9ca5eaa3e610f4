"""HTTP: the Flask app, its JSON API, pages, operations endpoints, labels and Comet's webhook."""
