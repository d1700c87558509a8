from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project on top of the apps: settings, URLs, ASGI, metrics, and `run_stack`."""

    name = "config"
    verbose_name = "Loupe"
    # Supervisors manage their team: accounts and their roles (config/admin.py keeps them from
    # superusers and from permissions beyond the roles).
    role_permissions = {"supervisor": ("auth.view_user", "auth.add_user", "auth.change_user")}
