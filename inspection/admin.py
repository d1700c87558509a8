"""The supervisor's admin: station settings (every change audited), device keys, units and their
decisions, disagreements, webhook deliveries and the access trail (read-only records).

The station page's Training panel and "Retrain now" belong to `workers` (a template tag that the
station's change form loads, and a view routed in `config/urls.py`): inspection never imports it.
Its threshold tool is inspection's own (`admin_views.station_thresholds`, routed in `get_urls`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from inspection.admin_views import (
    station_rollout,
    station_rollout_context,
    station_thresholds,
    station_webhook_secret,
)
from inspection.background import Task, task_enqueue
from inspection.models import (
    DEFECT_CLASS_LENGTH,
    AccessChange,
    DecisionEvent,
    DeviceKey,
    Disagreement,
    Prediction,
    Station,
    StationChange,
    StationSettings,
    Unit,
    defect_classes_problems,
)
from inspection.policy import StationPolicy
from inspection.selectors import station_escape_risk, unit_model_visible
from inspection.services.access import device_key_change_record
from inspection.services.rollout import challenger_promote, challenger_to_canary, champion_rollback
from inspection.services.stations import (
    POLICY_FIELDS,
    RISK_CONFIRMATION,
    audited_fields,
    settings_owners,
    station_retire,
    station_settings_write,
    station_update,
)
from inspection.supervision.models import Alarm, AlarmStatus, DriftCheck
from inspection.supervision.services import alarm_acknowledge, alarm_clear
from inspection.webhooks.models import DeliveryStatus, WebhookDelivery

# The station's models, changed by the rollout steps only.
ROLLOUT_FIELDS = ("champion", "challenger", "rollout_mode", "canary_share")

# Loupe's device keys belong to stations; the library's generic key model is not used.
admin.site.unregister(APIKey)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records are written by the system, never edited by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StationChangeInline(ReadOnlyInline):
    model = StationChange
    fields = ("changed_at", "changed_by", "field", "old_value", "new_value", "note", "alarm")
    readonly_fields = fields
    verbose_name_plural = "Change history (who, when, old -> new)"


class DeviceKeyInline(ReadOnlyInline):
    model = DeviceKey
    fields = ("prefix", "name", "created", "revoked")
    readonly_fields = fields
    show_change_link = True


class DefectClassesField(forms.Field):
    """The station's defect classes edited as a list, one name a line, in the order the station
    page numbers them; each name checked (`defect_classes_problems`), duplicates refused."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 40, "class": "defect-classes", "spellcheck": "false"})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def to_python(self, value) -> list[str]:
        if isinstance(value, list):
            return value
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        problems = defect_classes_problems(value)
        if problems:
            raise ValidationError(problems)

    def has_changed(self, initial, data) -> bool:
        return self.to_python(initial) != self.to_python(data)


class WriteOnlySecretField(forms.CharField):
    """A secret typed in to replace the saved one, never sent back to the page: the input is
    always empty, and left empty it keeps the saved secret (the form's `clean`)."""

    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def prepare_value(self, value) -> str:
        return ""

    def has_changed(self, initial, data) -> bool:
        return bool(data)


def _station_form() -> type[forms.ModelForm]:
    """The station's form, with the fields of every settings row (labeling, training, drift), so
    that one page and one save change them all, with one audit trail; and the confirmation a
    policy with an error on validation above the target asks for (`station_update`)."""

    def __init__(self, *args, **kwargs):
        forms.ModelForm.__init__(self, *args, **kwargs)
        if self.instance.pk is not None:
            for kind in StationSettings.kinds():
                row = kind.of(self.instance)
                for name in kind.setting_names():
                    self.initial.setdefault(name, getattr(row, name))

    def clean(self):
        cleaned = forms.ModelForm.clean(self)
        if not cleaned.get("webhook_secret"):
            cleaned["webhook_secret"] = self.instance.webhook_secret
        if any(name not in cleaned for name in POLICY_FIELDS):
            return cleaned  # a policy field is invalid: its own error says so
        saved = self.instance.pk is not None
        if saved and all(cleaned[name] == getattr(self.instance, name) for name in POLICY_FIELDS):
            return cleaned
        probe = self.instance if saved else Station(champion=cleaned.get("champion"))
        policy = StationPolicy(
            level=cleaned["automation_level"],
            target_escape_rate=cleaned["target_escape_rate"],
            uncertainty_band=cleaned["uncertainty_band"],
            audit_share=cleaned["audit_share"],
        )
        risk = station_escape_risk(station=probe, policy=policy)
        if risk is None:
            return cleaned
        if not cleaned.get(RISK_CONFIRMATION):
            self.add_error(RISK_CONFIRMATION, f"{risk.message}: tick to confirm you accept it")
        if not cleaned.get("risk_reason", "").strip():
            self.add_error("risk_reason", "give the reason for accepting an error above the target")
        return cleaned

    declared = {
        "webhook_secret": WriteOnlySecretField(
            required=False,
            max_length=Station._meta.get_field("webhook_secret").max_length,
            label="New webhook secret",
            help_text="Write-only: type a secret to replace the one saved (or use Rotate for a random "
            "one); leave it empty to keep it. The receiver checks each body's HMAC-SHA256 under it.",
        ),
        "defect_classes": DefectClassesField(
            required=False,
            help_text="In the order of the station page (keys 1-9 pick the first nine, the others are "
            f"picked by name); one a line without JavaScript. Up to {DEFECT_CLASS_LENGTH} characters "
            "each; a class added here reaches the station's data set and its next training.",
        ),
        RISK_CONFIRMATION: forms.BooleanField(
            required=False,
            label="Accept an error above the target",
            help_text="Needed only when the champion's error on its validation units, at the level "
            "chosen, is above the target escape rate (the threshold tool shows it).",
        ),
        "risk_reason": forms.CharField(
            required=False,
            max_length=200,
            label="Reason for accepting it",
            help_text="Kept with the change in the station's history.",
        ),
    }
    for kind in StationSettings.kinds():
        declared.update(forms.fields_for_model(kind, fields=kind.setting_names()))
    return type("StationForm", (forms.ModelForm,), {**declared, "__init__": __init__, "clean": clean})


@admin.register(Station)
class StationAdmin(admin.ModelAdmin):
    form = _station_form()
    list_display = (
        "slug",
        "name",
        "line",
        "automation_level",
        "champion",
        "challenger",
        "rollout_mode",
        "retired_at",
    )
    list_filter = ("automation_level", "rollout_mode", ("retired_at", admin.EmptyFieldListFilter))
    search_fields = ("slug", "name", "line")
    readonly_fields = (
        "webhook_secret_state",
        "webhook_secret_rotate",
        "created_at",
        "updated_at",
        "retired_at",
    )
    fieldsets = (
        (None, {"fields": ("slug", "name", "line", "defect_classes")}),
        (
            "Automation",
            {
                "fields": (
                    "automation_level",
                    "target_escape_rate",
                    "uncertainty_band",
                    "audit_share",
                    RISK_CONFIRMATION,
                    "risk_reason",
                ),
                "description": "In partial and in full automation, the audit share of the units the "
                "model would decide alone goes blind to a person: at partial automation, the live "
                "check of the escape rate its threshold was certified for (on the dashboard).",
            },
        ),
        (
            "Models",
            {
                "fields": ("champion", "challenger", "rollout_mode", "canary_share"),
                "description": "Changed with the Rollout buttons below, which move the MLflow aliases too.",
            },
        ),
        # The sections of the other parts' settings rows (labeling, training, drift) follow.
        *((kind.section, {"fields": kind.setting_names()}) for kind in StationSettings.kinds()),
        ("Camera", {"fields": ("max_image_pixels",)}),
        ("Webhook", {"fields": ("webhook_url", "webhook_secret")}),
        (None, {"fields": ("created_at", "updated_at", "retired_at")}),
    )
    inlines = [DeviceKeyInline, StationChangeInline]
    actions = ["challenger_canary", "challenger_champion", "champion_back", "retire"]

    def get_actions(self, request):
        # A station's changes are append-only (a trigger refuses their deletion): retire it instead.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        station = Station.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if station is None:
            return super().delete_view(request, object_id, extra_context)
        self.message_user(
            request,
            f"station {station.slug} cannot be deleted: its history (units, decisions, setting changes) "
            'is kept for good. Retire it instead (the "Retire" action in the station list): it then '
            "takes no more units and leaves the inspectors' queues.",
            messages.ERROR,
        )
        return redirect("admin:inspection_station_change", station.pk)

    @admin.action(description="Retire: no more units, out of the inspectors' queues", permissions=["rollout"])
    def retire(self, request, queryset) -> None:
        self._rollout(
            request,
            queryset,
            lambda *, station, user: station_retire(station=station, user=user, note="admin"),
            "retired: the line's posts are refused, its history stays",
        )

    def has_rollout_permission(self, request) -> bool:
        return request.user.has_perm("inspection.change_station")

    def _rollout(self, request, queryset, step, done: str) -> None:
        for station in queryset:
            try:
                step(station=station, user=request.user)
            except ValidationError as error:
                self.message_user(request, f"{station.slug}: {'; '.join(error.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"{station.slug}: {done}", messages.SUCCESS)

    @admin.action(description="Challenger: canary for a tenth of the units", permissions=["rollout"])
    def challenger_canary(self, request, queryset) -> None:
        self._rollout(
            request,
            queryset,
            lambda **kwargs: challenger_to_canary(share=0.1, **kwargs),
            "the challenger decides 10 % of units",
        )

    @admin.action(description="Challenger: promote to champion", permissions=["rollout"])
    def challenger_champion(self, request, queryset) -> None:
        self._rollout(request, queryset, challenger_promote, "the challenger is the champion")

    @admin.action(description="Champion: roll back to the previous one", permissions=["rollout"])
    def champion_back(self, request, queryset) -> None:
        self._rollout(request, queryset, champion_rollback, "rolled back to the previous champion")

    def get_urls(self):
        # Before the admin's own: its "<object_id>/" catch-all would take the tool's URL.
        threshold_tool = path(
            "<int:station_id>/thresholds/",
            self.admin_site.admin_view(station_thresholds),
            name="inspection_station_thresholds",
        )
        rollout = path(
            "<int:station_id>/rollout/",
            self.admin_site.admin_view(station_rollout),
            name="inspection_station_rollout",
        )
        webhook_secret = path(
            "<int:station_id>/webhook-secret/",
            self.admin_site.admin_view(station_webhook_secret),
            name="inspection_station_webhook_secret",
        )
        return [threshold_tool, rollout, webhook_secret, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        stations = Station.objects.select_related("champion", "challenger")
        station = stations.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if station is not None and self.has_change_permission(request, station):
            extra_context = {**(extra_context or {}), "rollout": station_rollout_context(station=station)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fieldsets(self, request, obj=None):
        # The secret is write-only: the page says whether one is set, and whoever may change the
        # station types a new one or rotates it.
        if obj is None:
            webhook = ("webhook_url", "webhook_secret")
        elif self.has_change_permission(request, obj):
            webhook = ("webhook_url", "webhook_secret_state", "webhook_secret_rotate", "webhook_secret")
        else:
            webhook = ("webhook_url", "webhook_secret_state")
        return [
            (name, {**options, "fields": webhook}) if name == "Webhook" else (name, options)
            for name, options in super().get_fieldsets(request, obj)
        ]

    @admin.display(description="Webhook secret")
    def webhook_secret_state(self, station: Station) -> str:
        return "set" if station.webhook_secret else "not set"

    @admin.display(description="Rotate the secret")
    def webhook_secret_rotate(self, station: Station) -> str:
        rotate = reverse("admin:inspection_station_webhook_secret", args=[station.pk])
        return format_html('<a href="{}">A new random secret, shown once</a>', rotate)

    def get_readonly_fields(self, request, obj=None):
        # The slug is in device integrations' URLs and WebSocket paths: fixed once created. The
        # models change through the rollout steps only (inspection/services/rollout.py), which
        # move the registry's aliases; a new station starts with its champion and no challenger.
        if obj is None:
            return (*self.readonly_fields, *ROLLOUT_FIELDS[1:])
        return (*self.readonly_fields, "slug", *ROLLOUT_FIELDS)

    def save_model(self, request, obj: Station, form, change: bool) -> None:
        if change:
            fields = set(audited_fields())
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name in fields}
            station_update(
                station=obj,
                changes=changes,
                user=request.user,
                note="admin",
                accepted_risk=form.cleaned_data.get("risk_reason", "")
                if form.cleaned_data.get(RISK_CONFIRMATION)
                else "",
            )
            return
        rows = {name: form.cleaned_data[name] for name in settings_owners() if name in form.cleaned_data}
        note = "admin"
        if form.cleaned_data.get(RISK_CONFIRMATION):
            reason = form.cleaned_data["risk_reason"].strip()
            note = f"admin; accepted an error on validation above the target: {reason}"[:300]
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            station_settings_write(station=obj, values=rows)
            StationChange.objects.create(
                station=obj, changed_by=request.user, field="created", new_value=obj.slug, note=note
            )


@admin.register(DeviceKey)
class DeviceKeyAdmin(APIKeyModelAdmin):
    """Create a key here (shown once) or with `manage.py create_device_key`; tick "revoked" to
    lock a line computer out (it cannot be undone)."""

    list_display = ("prefix", "name", "station", "created", "expiry_date", "_has_expired", "revoked")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke it: the access trail keeps who made and who revoked each key

    def save_model(self, request, obj: DeviceKey, form, change: bool) -> None:
        revoking = change and "revoked" in form.changed_data and obj.revoked
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if not change or revoking:
                field = "revoked" if revoking else "created"
                device_key_change_record(key=obj, field=field, user=request.user, note="admin")

    list_filter = ("station", "revoked")
    search_fields = ("name", "prefix", "station__slug")


class PredictionInline(ReadOnlyInline):
    model = Prediction
    fields = ("model_version", "role", "verdict", "defect_probability", "confidence", "label", "latency_ms")
    readonly_fields = fields


class DecisionInline(ReadOnlyInline):
    model = DecisionEvent
    fields = ("created_at", "verdict", "defect_classes", "decided_by_model", "decided_by_user", "reason")
    readonly_fields = fields


@admin.register(Unit)
class UnitAdmin(ReadOnlyAdmin):
    list_display = ("id", "station", "serial", "status", "automation_level", "queue_reason", "received_at")
    list_filter = ("station", "status", "automation_level", "queue_reason")
    search_fields = ("serial",)
    date_hierarchy = "received_at"
    readonly_fields = ("image_preview",)
    inlines = [PredictionInline, DecisionInline]

    class Media:
        css = {"all": ["css/unit_admin.css"]}  # no style attributes: the pages' CSP allows none

    def get_inlines(self, request, obj: Unit | None):
        # A blind unit still waiting for a person shows nothing of the model: whoever opens it
        # here may be the one to judge it.
        if obj is not None and not unit_model_visible(unit=obj):
            return [DecisionInline]
        return self.inlines

    @admin.display(description="image")
    def image_preview(self, unit: Unit) -> str:
        return format_html(
            '<img src="{}" class="unit-preview">', reverse("unit-image", kwargs={"pk": unit.pk})
        )


@admin.register(DecisionEvent)
class DecisionEventAdmin(ReadOnlyAdmin):
    list_display = ("unit", "verdict", "reason", "decided_by_model", "decided_by_user", "created_at")
    list_filter = ("verdict", "reason", "unit__station")
    date_hierarchy = "created_at"


@admin.register(AccessChange)
class AccessChangeAdmin(ReadOnlyAdmin):
    """The access trail: device keys made and revoked, accounts made, (de)activated, given roles."""

    list_display = (
        "changed_at",
        "changed_by",
        "account",
        "device_key",
        "field",
        "old_value",
        "new_value",
        "note",
    )
    list_filter = ("field",)
    search_fields = ("account__username", "changed_by__username", "device_key__prefix", "device_key__name")
    date_hierarchy = "changed_at"


@admin.register(Disagreement)
class DisagreementAdmin(ReadOnlyAdmin):
    list_display = ("unit", "kind", "human_verdict", "model_verdict", "prediction", "created_at")
    list_filter = ("kind", "unit__station")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "station",
        "url",
        "status",
        "attempts",
        "last_status_code",
        "last_duration_ms",
        "last_error",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "station")
    actions = ["send_again"]

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("inspection.change_station")

    @admin.action(description="Send again (failed or pending deliveries)", permissions=["resend"])
    def send_again(self, request, queryset) -> None:
        resend = list(queryset.exclude(status=DeliveryStatus.DELIVERED).values_list("id", flat=True))
        queryset.filter(id__in=resend).update(status=DeliveryStatus.PENDING)
        queued = sum(
            task_enqueue(Task.WEBHOOK_DELIVER, delivery_id, what="webhook delivery") for delivery_id in resend
        )
        self.message_user(request, f"{queued} deliveries queued again.", messages.SUCCESS)


@admin.register(Alarm)
class AlarmAdmin(ReadOnlyAdmin):
    """Drift alarms; a supervisor acknowledges them and clears them once the cause is dealt with
    (the dashboard has the same buttons, and a note field)."""

    list_display = ("id", "station", "kind", "status", "summary", "times_seen", "raised_at", "last_seen_at")
    list_filter = ("status", "kind", "station")
    date_hierarchy = "raised_at"
    actions = ["acknowledge", "clear"]

    def has_handle_permission(self, request) -> bool:
        return request.user.has_perm("inspection.change_alarm")

    def _each(self, request, queryset, step, done: str) -> None:
        for alarm in queryset.select_related("station"):
            try:
                step(alarm=alarm, user=request.user)
            except ValidationError as error:
                self.message_user(request, "; ".join(error.messages), messages.WARNING)
            else:
                self.message_user(request, f"alarm {alarm.pk}: {done}", messages.SUCCESS)

    @admin.action(description="Acknowledge the selected alarms", permissions=["handle"])
    def acknowledge(self, request, queryset) -> None:
        self._each(request, queryset.filter(status=AlarmStatus.OPEN), alarm_acknowledge, "acknowledged")

    @admin.action(description="Clear the selected alarms (the cause is dealt with)", permissions=["handle"])
    def clear(self, request, queryset) -> None:
        self._each(request, queryset.exclude(status=AlarmStatus.CLEARED), alarm_clear, "cleared")


@admin.register(DriftCheck)
class DriftCheckAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "station",
        "model_version",
        "first_unit_id",
        "last_unit_id",
        "shifted",
        "checked_at",
    )
    list_filter = ("shifted", "station")
    date_hierarchy = "checked_at"
