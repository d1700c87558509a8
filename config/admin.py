"""People in the admin: supervisors manage their team's accounts and roles, and no more.

A supervisor (not a superuser) sees and edits only accounts that are not superusers, gives only
the three roles (the `inspector`, `labeler`, `supervisor` groups), and never sets superuser
status or single permissions, so no one can give more than they have. Every account made,
(de)activated or given other roles is recorded in the access trail, with who did it.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, User

from inspection.roles import INSPECTOR, LABELER, SUPERVISOR
from inspection.services.access import account_changes_record, account_snapshot

ROLES = (INSPECTOR, LABELER, SUPERVISOR)


class TeamUserAdmin(UserAdmin):
    list_display = ("username", "first_name", "last_name", "email", "roles", "is_active", "last_login")
    list_filter = ("groups", "is_active", "is_staff")

    team_fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        (
            "Roles",
            {
                "fields": ("groups", "is_active", "is_staff"),
                "description": "Staff: may open the admin (supervisors, to manage stations and people).",
            },
        ),
    )
    team_add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "usable_password", "password1", "password2")}),
    )

    @admin.display(description="roles")
    def roles(self, user: User) -> str:
        return ", ".join(group.name for group in user.groups.all()) or "–"

    def get_queryset(self, request):
        users = super().get_queryset(request).prefetch_related("groups")
        return users if request.user.is_superuser else users.filter(is_superuser=False)

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return self.team_add_fieldsets if obj is None else self.team_fieldsets

    def save_model(self, request, obj: User, form, change: bool) -> None:
        # Read before saving: the database still holds what the account had.
        form.access_before = account_snapshot(account=User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # the roles (groups) are saved here
        account_changes_record(
            account=form.instance, before=form.access_before, user=request.user, note="admin"
        )

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(name__in=ROLES)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


admin.site.unregister(User)
admin.site.register(User, TeamUserAdmin)
