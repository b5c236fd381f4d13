"""The PopCompliance Django project: settings, URLs and, app by app, the fleet pipeline."""
