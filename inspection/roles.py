"""The people's roles as Django groups: inspector, labeler, supervisor.

`roles_ensure` runs after every `migrate` (post_migrate), so the groups and their permissions
exist on a fresh database and follow this table when it changes. Superusers have everything.
"""

from __future__ import annotations

INSPECTOR, LABELER, SUPERVISOR = "inspector", "labeler", "supervisor"

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    INSPECTOR: (
        "inspection.decide_unit",
        "inspection.view_unit",
        "inspection.view_station",
    ),
    LABELER: (
        "inspection.view_unit",
        "inspection.view_station",
        "labeling.label_item",
    ),
    SUPERVISOR: (
        "inspection.view_station",
        "inspection.change_station",
        "inspection.view_dashboard",
        "inspection.view_stationchange",
        "inspection.view_alarm",
        "inspection.change_alarm",
        "inspection.view_driftcheck",
        "inspection.view_unit",
        "inspection.decide_unit",
        "inspection.view_decisionevent",
        "inspection.view_prediction",
        "inspection.view_disagreement",
        "inspection.view_webhookdelivery",
        "inspection.view_devicekey",
        "inspection.change_devicekey",
        "models_registry.view_modelversion",
        "workers.view_trainingjob",
        "labeling.label_item",
        "labeling.view_labeltask",
        "labeling.view_labelsubmission",
    ),
}


def roles_ensure(*, using: str = "default", **kwargs) -> None:
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    # The roles name other apps' permissions, which their own post_migrate may not have made yet.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is None:
                raise LookupError(f"role {role}: permission {name} does not exist (a renamed model?)")
            permissions.append(permission)
        group.permissions.set(permissions)
