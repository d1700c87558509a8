from django.apps import AppConfig


class WorkersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workers"
    # What each role may do here (gathered by inspection.roles)
    role_permissions = {"supervisor": ("view_trainingjob",)}
