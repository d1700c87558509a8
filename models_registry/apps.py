from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "models_registry"
    # What each role may do here (gathered by inspection.roles, above this app)
    role_permissions = {"supervisor": ("view_modelversion",)}
