"""The people's roles as Django groups: inspector, labeler, supervisor.

`roles_ensure` runs after every `migrate` (post_migrate), so the groups and their permissions
exist on a fresh database and follow the apps' tables (`role_permissions` on each AppConfig) when
they change. Superusers have everything.
"""

from __future__ import annotations

INSPECTOR, LABELER, SUPERVISOR = "inspector", "labeler", "supervisor"

# This app's share; every app declares its own as `role_permissions` on its AppConfig.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    INSPECTOR: ("decide_unit", "view_unit", "view_station", "add_unitcomment"),
    LABELER: ("view_unit", "view_station", "add_unitcomment"),
    SUPERVISOR: (
        "view_station",
        "add_station",
        "change_station",
        "view_dashboard",
        "view_stationchange",
        "view_alarm",
        "change_alarm",
        "view_driftcheck",
        "view_unit",
        "decide_unit",
        "add_unitcomment",
        "view_decisionevent",
        "view_prediction",
        "view_disagreement",
        "view_webhookdelivery",
        "view_devicekey",
        "add_devicekey",
        "change_devicekey",
    ),
}


def role_permissions() -> dict[str, list[tuple[str, str]]]:
    """Each role's permissions as (app label, codename), gathered from every app's AppConfig (a
    codename of the app's own models, or "app_label.codename" for another app's, such as auth's)."""
    from django.apps import apps

    gathered: dict[str, list[tuple[str, str]]] = {INSPECTOR: [], LABELER: [], SUPERVISOR: []}
    for app_config in apps.get_app_configs():
        for role, codenames in getattr(app_config, "role_permissions", {}).items():
            for codename in codenames:
                app_label, _, name = codename.rpartition(".")
                gathered[role].append((app_label or app_config.label, name))
    return gathered


def roles_ensure(*, using: str = "default", **kwargs) -> None:
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    # The roles name other apps' permissions, which their own post_migrate may not have made yet.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    for role, names in role_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for app_label, codename in names:
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is None:
                raise LookupError(
                    f"role {role}: permission {app_label}.{codename} does not exist (a renamed model?)"
                )
            permissions.append(permission)
        group.permissions.set(permissions)
