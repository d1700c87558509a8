from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project on top of the apps: settings, URLs, ASGI, metrics, and `run_stack`."""

    name = "config"
    verbose_name = "Loupe"
