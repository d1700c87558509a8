from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class InspectionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inspection"

    @property
    def role_permissions(self):
        from inspection.roles import ROLE_PERMISSIONS

        return ROLE_PERMISSIONS

    @property
    def live_events(self):
        """The events this app publishes to a station's WebSocket, type -> payload serializer
        (every app may declare its own; config.api_schema gathers them into the schema)."""
        from inspection.events_schema import LIVE_EVENTS

        return LIVE_EVENTS

    def ready(self) -> None:
        from inspection.authentication import device_cache_clear
        from inspection.models import DeviceKey, Station, StationSettings
        from inspection.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="inspection.roles_ensure")
        # A key revoked or a station (or one of its settings rows) changed in this process takes
        # effect at once.
        for model in (DeviceKey, Station, *StationSettings.kinds()):
            uid = f"inspection.device_cache_clear.{model._meta.label}"
            post_save.connect(device_cache_clear, sender=model, dispatch_uid=uid)
            post_delete.connect(device_cache_clear, sender=model, dispatch_uid=f"{uid}.delete")
