from django.apps import AppConfig


class WorkersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workers"
    # What each role may do here (gathered by inspection.roles)
    role_permissions = {"supervisor": ("view_trainingjob",)}

    @property
    def live_events(self):
        """The events this app publishes to a station's WebSocket (gathered by config.api_schema)."""
        from workers.schema import LIVE_EVENTS

        return LIVE_EVENTS
