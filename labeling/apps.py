from django.apps import AppConfig


class LabelingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "labeling"
    # What each role may do here (gathered by inspection.roles)
    role_permissions = {
        "labeler": ("label_item",),
        # view_dataset: the data sets in the admin, and their export.
        "supervisor": ("label_item", "view_labeltask", "view_labelsubmission", "view_dataset"),
    }

    def ready(self) -> None:
        from inspection.history.timeline import timeline_source_register
        from inspection.signals import automatic_decision_recorded, human_decision_recorded
        from labeling.history import unit_label_entries
        from labeling.station_data import on_automatic_decision, on_human_decision

        timeline_source_register(unit_label_entries)
        human_decision_recorded.connect(on_human_decision, dispatch_uid="labeling.on_human_decision")
        automatic_decision_recorded.connect(
            on_automatic_decision, dispatch_uid="labeling.on_automatic_decision"
        )
