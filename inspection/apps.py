from django.apps import AppConfig
from django.db.models.signals import post_migrate


class InspectionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inspection"

    def ready(self) -> None:
        from inspection.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="inspection.roles_ensure")
