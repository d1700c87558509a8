from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class InspectionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inspection"

    @property
    def role_permissions(self):
        from inspection.roles import ROLE_PERMISSIONS

        return ROLE_PERMISSIONS

    def ready(self) -> None:
        from inspection.authentication import device_cache_clear
        from inspection.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="inspection.roles_ensure")
        # A key revoked or a station changed in this process takes effect at once.
        for model_name in ("DeviceKey", "Station"):
            model = self.get_model(model_name)
            uid = f"inspection.device_cache_clear.{model_name}"
            post_save.connect(device_cache_clear, sender=model, dispatch_uid=uid)
            post_delete.connect(device_cache_clear, sender=model, dispatch_uid=f"{uid}.delete")
